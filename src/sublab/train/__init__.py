"""Student training (hard and soft labels, full and LoRA) and teacher strength.

- :mod:`sublab.train.recipe` — ``StudentRecipe`` (light: configs import it without torch).
- :mod:`sublab.train.loop` — ``finetune`` and the training loop.
- :mod:`sublab.train.strength` — ``number_kl`` and ``mean_logprob``.
"""
