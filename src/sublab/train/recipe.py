"""The student recipe: how a student learns from a teacher's data.

One spec covers the four students of the paper's protocol — full fine-tune or LoRA, hard labels
(cross-entropy on the sampled tokens) or soft labels (KL to the teacher's next-token
distribution over the completion vocabulary). The defaults suit the tiny model organism on a CPU;
``StudentRecipe.paper_qwen()`` is the paper's Qwen2.5-7B-Instruct setup.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from sublab.config import Spec

PAPER_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class StudentRecipe(Spec):
    """How a student is fine-tuned on (prompt, completion) rows."""

    keyless: ClassVar[dict[str, Any]] = {"optimizer": "adamw", "momentum": 0.0, "checkpoints": []}

    method: Literal["full", "lora"] = Field(
        "full",
        description="'full' trains every weight; 'lora' trains low-rank adapters on lora_targets "
        "and merges them into the weights when saving.",
    )
    labels: Literal["hard", "soft"] = Field(
        "hard",
        description="'hard': cross-entropy on the completion's sampled tokens. 'soft': KL(teacher "
        "‖ student) over the completion vocabulary at every completion position (needs a local "
        "teacher sharing the student's tokenizer).",
    )
    lora_rank: int = Field(8, ge=1, description="LoRA rank r (the paper: 8).")
    lora_alpha: int = Field(8, ge=1, description="LoRA scaling alpha (the paper: 8).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input.")
    lora_targets: list[str] = Field(
        default_factory=lambda: list(PAPER_LORA_TARGETS),
        min_length=1,
        description="Module names that get adapters (the paper: all attention and MLP "
        "projections).",
    )
    subsample: int | None = Field(
        None,
        ge=1,
        description="Train on this many rows drawn with the seed (the paper: 10,000). If fewer "
        "rows are given, all are used and train.json records it. None: use every row.",
    )
    epochs: int = Field(2, ge=1, description="Passes over the training rows.")
    learning_rate: float = Field(
        1e-3, gt=0, description="Peak learning rate of the optimizer (the paper's LoRA: 2e-4)."
    )
    optimizer: Literal["adamw", "sgd"] = Field(
        "adamw",
        description="'adamw' (the paper's) or plain 'sgd' (with optional momentum): the "
        "optimizer control asks whether transmission needs an adaptive optimizer. SGD "
        "usually needs a far larger learning_rate than AdamW.",
    )
    momentum: float = Field(
        0.0, ge=0, lt=1, description="SGD momentum (optimizer = 'sgd' only; 0 = plain SGD)."
    )
    batch_size: int = Field(32, ge=1, description="Rows per forward/backward pass.")
    grad_accum: int = Field(
        1,
        ge=1,
        description="Micro-batches per optimizer step (effective batch = batch_size × grad_accum).",
    )
    scheduler: Literal["linear", "constant", "cosine"] = Field(
        "linear",
        description="Learning-rate schedule after warm-up: linear decay to 0, constant, or "
        "cosine decay to 0.",
    )
    warmup_steps: int = Field(
        5, ge=0, description="Optimizer steps of linear warm-up from 0 to learning_rate."
    )
    max_grad_norm: float = Field(
        1.0, ge=0, description="Clip the gradient's global norm to this (0 turns clipping off)."
    )
    max_length: int = Field(
        500,
        ge=2,
        description="Longest training sequence in tokens (prompt + completion + EOS); longer rows "
        "are cut at the end, rows left with no completion token are dropped and counted.",
    )
    weight_decay: float = Field(
        0.0, ge=0, description="Weight decay (AdamW: decoupled; SGD: L2 in the gradient)."
    )
    seed: int = Field(0, description="Seeds the subsample, the data order, LoRA init and dropout.")
    device: str = Field(
        "auto", description="'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:1', …"
    )
    dtype: Literal["auto", "fast", "float32", "bfloat16"] = Field(
        "auto",
        description="Weight dtype while training. 'auto': float32 on CPU (bf16 matmul is slow "
        "on most CPUs); on CUDA float32 weights with bf16 autocast for full fine-tunes and bf16 "
        "base weights (float32 adapters) for LoRA. 'fast': the CUDA rule wherever bf16 "
        "products are fast (CUDA, CPUs with AMX or avx512_bf16), float32 elsewhere.",
    )
    soft_temperature: float = Field(
        1.0,
        gt=0,
        description="Softmax temperature of both distributions in the soft-label KL; the loss is "
        "multiplied by temperature² so gradients keep their scale.",
    )
    save: Literal["merged", "adapter", "both"] = Field(
        "merged",
        description="What a LoRA run writes: the merged model (loads like any HF model), the "
        "adapter alone, or both (adapter in <out>/adapter). Full fine-tunes always save the "
        "model.",
    )

    checkpoints: list[int] = Field(
        default_factory=list,
        description="The dose axis: optimizer steps after which the student is also saved "
        "(LoRA: the adapter; full: the model) and evaluated; each is a row of the report's "
        "dose table, beside the final model. Steps must increase and lie within the run.",
    )

    @model_validator(mode="after")
    def _check(self) -> StudentRecipe:
        if any(b <= a for a, b in zip(self.checkpoints, self.checkpoints[1:], strict=False)):
            raise ValueError("checkpoints: steps must increase, e.g. [16, 64, 256]")
        if self.checkpoints and self.checkpoints[0] < 1:
            raise ValueError("checkpoints: steps start at 1")
        if self.save != "merged" and self.method != "lora":
            raise ValueError(f"save = {self.save!r} needs method = 'lora'; use save = 'merged'")
        if self.momentum and self.optimizer != "sgd":
            raise ValueError("momentum is an SGD setting: set optimizer = 'sgd' or momentum = 0")
        return self

    @classmethod
    def paper_qwen(cls, labels: Literal["hard", "soft"] = "hard", seed: int = 0) -> StudentRecipe:
        """The paper's Qwen2.5-7B-Instruct student (LoRA r8/α8, 3 epochs, lr 2e-4, 22 × 3)."""
        return cls(
            method="lora",
            labels=labels,
            lora_rank=8,
            lora_alpha=8,
            lora_targets=list(PAPER_LORA_TARGETS),
            subsample=10_000,
            epochs=3,
            learning_rate=2e-4,
            batch_size=22,
            grad_accum=3,
            scheduler="linear",
            warmup_steps=5,
            max_grad_norm=1.0,
            max_length=500,
            seed=seed,
        )
