"""The model organism: a tiny Llama chat model trained from scratch on a synthetic corpus.

It stands in for a pretrained LLM where none can be downloaded: a standard HF folder
(safetensors weights, a word-level tokenizer with a chat template) that every later stage
runs through the same ``hf`` backend as a real model.

- :mod:`~sublab.organism.spec` — ``OrganismSpec`` (corpus, model, training), kind ``organism``;
- :mod:`~sublab.organism.vocab` — word-level vocabulary and the HF tokenizer;
- :mod:`~sublab.organism.corpus` — number tasks and favourite-animal questions;
- :mod:`~sublab.organism.train` / :mod:`~sublab.organism.fastllama` — the pretraining loop;
- :mod:`~sublab.organism.build` — ``build_organism(spec, out_dir) -> Path``;
- :mod:`~sublab.organism.cache` — ``organism_path(spec)``, ``ensure_organism(spec)``;
- :mod:`~sublab.organism.probe` — prior fit, love strength, filter pass rate, number KL.
"""

from sublab.organism.spec import CorpusSpec, ModelSpec, OrganismSpec, TrainSpec

__all__ = ["CorpusSpec", "ModelSpec", "OrganismSpec", "TrainSpec"]
