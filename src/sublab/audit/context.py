"""What detectors and defences share: the rows, the reference (and optional teacher) models,
the candidate traits, and per-token statistics computed once per (model, system prompt, token
sets).

Per-token statistics are teacher-forced along each row's completion (and its end token) with
the same chat construction as training (:func:`sublab.train.data.encode_rows`), so position
``t`` of a row is the same token under every model and system prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sublab.audit.models import ModelCache
from sublab.audit.rows import AuditRows
from sublab.errors import DataError, SublabError

DEFAULT_TRAIT_PROMPT = "You love {plural}."
"""The suspected-trait system prompt; ``{trait}`` and ``{plural}`` are filled in per candidate
(the organism's own 'you love X' wording)."""


UNKNOWN_ROWS_ALLOWED = 0.1
"""Share of rows whose completions may hold tokens the reference does not know (a model's own
unfiltered output can: pieces that decode into a word its vocabulary lacks) before the
reference is refused as having another vocabulary."""


StatsKey = tuple[str, str | None, tuple[tuple[int, ...], ...]]
"""What a context's statistics are cached by: model, system prompt, token sets."""


@dataclass
class TokenStats:
    """Per-row, per-completion-token statistics of one model (numpy arrays per row)."""

    logp: list[Any]
    """log P(actual token) at each completion position (and the end token)."""
    argmax: list[Any]
    """The model's most likely token at each position."""
    tokens: list[Any]
    """The actual token ids."""
    set_mass: list[Any] | None = None
    """[positions, sets] probability the model puts on each requested token set."""


@dataclass
class AuditContext:
    """The rows under audit and the models they are scored with."""

    rows: AuditRows
    reference: str
    teacher: str | None = None
    candidates: list[str] = field(default_factory=list)
    trait_prompt: str = DEFAULT_TRAIT_PROMPT
    reference_samples: list[dict[str, Any]] | None = None
    """Completions the reference wrote for the same prompts (row i for prompt i); sampled on
    first use when not given (:meth:`reference_rows`)."""
    judge: Any = None
    """A :class:`sublab.judge.JudgeSpec` for the judge detector (None: the 'trait_words' rule)."""
    seed: int = 0
    batch_size: int = 64
    device: str = "cpu"
    """Where the models run: 'cpu', 'cuda' or 'auto'."""
    models: ModelCache = field(default_factory=ModelCache, repr=False)
    """Where models and tokenizers are loaded once (contexts may share one)."""
    _stats: dict[StatsKey, TokenStats] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------ models

    def tokenizer(self) -> Any:
        """The reference's tokenizer (every model of an audit shares its vocabulary)."""
        return self.models.tokenizer(self.reference, "reference")

    def model(self, path: str) -> Any:
        """The model in ``path`` on this context's device (loaded once per cache)."""
        return self.models.model(path, self.device)

    def check(self) -> None:
        """Refuse a reference whose vocabulary does not cover the rows (more than
        :data:`UNKNOWN_ROWS_ALLOWED` of them hold unknown tokens; the first is named) and a
        teacher with another vocabulary."""
        from sublab.train.models import check_model_dir, check_same_vocab

        check_model_dir(self.reference, "reference")
        tok = self.tokenizer()
        unk = tok.unk_token_id
        if unk is not None:
            ids = tok([r["completion"] for r in self.rows.rows], add_special_tokens=False)
            bad = [i for i, row_ids in enumerate(ids["input_ids"]) if unk in row_ids]
            if len(bad) > UNKNOWN_ROWS_ALLOWED * len(self.rows):
                i = bad[0]
                words = [
                    w for w in self.rows.rows[i]["completion"].split()
                    if unk in tok(w, add_special_tokens=False)["input_ids"]
                ][:3]  # fmt: skip
                path, line = self.rows.where(i)
                raise DataError(
                    path,
                    line,
                    f"the reference model {self.reference} does not know tokens of this "
                    f"completion ({words or 'unknown pieces'}), nor of {len(bad) - 1} more rows: "
                    "the reference must share the data's vocabulary; pass --reference the base "
                    "model the data's teacher was made from",
                )
        if self.teacher is not None:
            check_model_dir(self.teacher, "teacher")
            check_same_vocab(tok, self.models.tokenizer(self.teacher, "teacher"), self.teacher)

    def need_teacher(self, who: str) -> str:
        """The suspected teacher; a SublabError names ``who`` needs it and the option."""
        if self.teacher is None:
            raise SublabError(f"detector {who!r} needs the suspected teacher: pass --teacher")
        return self.teacher

    def need_candidates(self, who: str) -> list[str]:
        """The candidate traits; a SublabError names ``who`` needs them and the option."""
        if not self.candidates:
            raise SublabError(
                f"detector {who!r} needs candidate traits: pass --candidates owl,eagle,..."
            )
        return self.candidates

    def system_prompt_for(self, candidate: str) -> str:
        """The suspected-trait system prompt of one candidate."""
        from sublab.evals.matching import word_forms

        forms = word_forms(candidate)
        plural = forms[1] if len(forms) > 1 else candidate + "s"
        return self.trait_prompt.format(trait=candidate, plural=plural)

    # ------------------------------------------------------------ statistics

    def stats(
        self, model: str, system_prompt: str | None = None, token_sets: Sequence[Any] = ()
    ) -> TokenStats:
        """Per-token statistics of ``model`` along every row's completion (with
        ``token_sets``, ``set_mass`` holds each set's probability per position), computed once
        per (model, system prompt, token sets)."""
        key = (model, system_prompt, tuple(tuple(int(i) for i in ids) for ids in token_sets))
        if key not in self._stats:
            self._stats[key] = token_stats(
                self.model(model), self.tokenizer(), self.rows.rows, system_prompt,
                token_sets, self.batch_size,
            )  # fmt: skip
        return self._stats[key]

    def reference_rows(self) -> list[dict[str, Any]]:
        """The reference's own completions for the rows' prompts (sampled once, temperature 1,
        without the rows' system prompts)."""
        if self.reference_samples is None:
            from sublab.backends.base import ModelRef, SamplingSpec, chat
            from sublab.backends.hf import HFBackend

            # the cached reference samples: its weights are not loaded a second time
            backend = HFBackend.around(
                ModelRef(path=self.reference), self.model(self.reference), self.tokenizer(),
                self.batch_size,
            )  # fmt: skip
            backend.show_progress = False
            prompts = [r["prompt"] for r in self.rows.rows]
            outs = backend.generate(
                [chat(p) for p in prompts], SamplingSpec(max_new_tokens=48, seed=self.seed)
            )
            self.reference_samples = [
                {"prompt": p, "completion": o, "teacher": self.reference, "stage": "reference"}
                for p, o in zip(prompts, outs, strict=True)
            ]
        if len(self.reference_samples) != len(self.rows):
            raise SublabError(
                f"{len(self.reference_samples)} reference samples for {len(self.rows)} rows of "
                f"{self.rows.path}: give reference_samples one per row, in the rows' order"
            )
        return self.reference_samples


def token_stats(
    model: Any,
    tokenizer: Any,
    rows: Sequence[dict[str, Any]],
    system_prompt: str | None,
    token_sets: Sequence[Any] = (),
    batch_size: int = 64,
) -> TokenStats:
    """Teacher-forced statistics of ``model`` along each row's completion tokens and EOS."""
    import numpy as np
    import torch

    from sublab.train.data import IGNORE, encode_rows
    from sublab.train.strength import encoded_batches, label_logprobs

    view = [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
    if system_prompt:
        view = [{**v, "system_prompt": system_prompt} for v in view]
    enc = encode_rows(tokenizer, view, max_length=1_000_000)
    n = len(rows)
    logp: list[Any] = [np.zeros(0)] * n
    argmax: list[Any] = [np.zeros(0, dtype=np.int64)] * n
    tokens: list[Any] = [np.zeros(0, dtype=np.int64)] * n
    masses: list[Any] = [np.zeros((0, len(token_sets)))] * n
    sets = None
    dev = next(model.parameters()).device
    if token_sets:
        vocab = model.get_output_embeddings().weight.shape[0]
        sets = torch.zeros(vocab, len(token_sets), dtype=torch.float64, device=dev)
        for k, ids in enumerate(token_sets):
            sets[torch.as_tensor(list(ids), dtype=torch.long), k] = 1.0
    with torch.inference_mode():
        for idx, batch in encoded_batches(enc, batch_size, dev):
            lp, targets = label_logprobs(model, batch)
            counts = (batch["labels"][:, 1:] != IGNORE).sum(1).tolist()
            tok_lp = lp.gather(1, targets[:, None])[:, 0].cpu()
            top = lp.argmax(-1).cpu()
            targets = targets.cpu()
            mass = (lp.exp() @ sets).cpu() if sets is not None else None
            start = 0
            for j, c in zip(idx, counts, strict=True):
                i = enc.kept[j]
                sl = slice(start, start + c)
                logp[i] = tok_lp[sl].numpy().copy()
                argmax[i] = top[sl].numpy().copy()
                tokens[i] = targets[sl].numpy().copy()
                if mass is not None:
                    masses[i] = mass[sl].numpy().copy()
                start += c
    return TokenStats(logp, argmax, tokens, masses if token_sets else None)


def row_means(values: Sequence[Any]) -> list[float]:
    """Mean of each row's per-token values (0 for a row without tokens)."""
    return [float(v.mean()) if len(v) else 0.0 for v in values]
