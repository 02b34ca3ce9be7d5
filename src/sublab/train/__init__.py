"""Student training (hard and soft labels, full and LoRA) and teacher strength."""

from sublab.train.loop import TrainResult, finetune
from sublab.train.recipe import StudentRecipe
from sublab.train.strength import mean_logprob, number_kl

__all__ = ["StudentRecipe", "TrainResult", "finetune", "mean_logprob", "number_kl"]
