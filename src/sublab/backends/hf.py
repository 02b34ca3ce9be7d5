"""The ``hf`` backend: transformers (+ PEFT adapters) on CPU or GPU.

``generate`` samples with its own batched loop over the KV cache (left padding, prompts grouped
by length to cut padding). Its draws are counter-based (:mod:`sublab.backends.draws`): the i-th
chat's tokens depend only on the sampling seed, i and the model, never on the batching, earlier
calls or the global RNG, and two models sampled with the same seed share their draws.
``score`` computes exact ``log P(continuation | prompt)`` in float64, tokenizing the
continuation on its own so no token straddles the boundary.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from sublab.backends import register_backend
from sublab.backends.base import BackendSettings, Chat, ModelRef, SamplingSpec
from sublab.backends.chat_format import render_prompt
from sublab.backends.draws import chat_keys, gumbel_sample, step_keys
from sublab.backends.grammar import NumberGrammar, State, TokenGrammar, token_grammar
from sublab.backends.heads import head_logits, model_parts
from sublab.catalog.resolve import local_path
from sublab.errors import SublabError
from sublab.progress import progress, quiet_transformers

quiet_transformers()

# Tokens of logits allowed in one scoring forward pass (batch x length x vocab floats).
_SCORE_LOGIT_BUDGET = 64 * 1024 * 1024


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` is cuda when available, else cpu; anything else is checked and returned."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise SublabError(
            f"device: {device!r} is not a torch device; use auto, cpu or cuda"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SublabError(f"device: {device!r} asked for, but CUDA is not available; use 'cpu'")
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` is bfloat16 on cuda and float32 elsewhere (bf16 matmul is slow on most CPUs);
    ``fast`` is bfloat16 wherever bf16 products are fast (cuda, CPUs with AMX or avx512_bf16)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype == "fast":
        from sublab.cpu import fast_bf16

        return torch.bfloat16 if fast_bf16(device) else torch.float32
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in table:
        raise SublabError(
            f"dtype {dtype!r} is not supported: use one of auto, fast, {', '.join(table)}"
        )
    return table[dtype]


def cache_argument(model: Any) -> str:
    """The name of the KV-cache argument (and output field) of ``model.forward``: ``cache`` in
    recent transformers, ``past_key_values`` before (now deprecated, with a warning per call)."""
    import inspect

    if hasattr(model, "get_base_model"):  # a PEFT wrapper passes its arguments through
        model = model.get_base_model()
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _looks_like_hub_id(path: str) -> bool:
    """``org/name`` (one slash, no leading ./, /, ~) may be a hub id; anything else is local."""
    if path.startswith((".", "/", "~")) or path.startswith("runs/"):
        return False
    return path.count("/") == 1 and all(path.split("/"))


def _missing_model_error(path: str, why: str | None = None) -> SublabError:
    msg = (
        f"model path {path} does not exist: build it with 'sublab organism build' or pass a hub id"
    )
    if why:
        msg += f" (it is not a local folder, and loading it as a hub id failed: {why})"
    return SublabError(msg)


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """The tokenizer of a local model folder, hub id or ``catalog:<name>``, with a clear error
    when missing."""
    path = local_path(path)
    if not Path(path).exists() and not _looks_like_hub_id(path):
        raise _missing_model_error(path)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise _missing_model_error(path, _first_line(err)) from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _seed_for(seed: int, *parts: Any) -> int:
    """A 63-bit seed derived only from ``seed`` and ``parts`` (stable across processes)."""
    h = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def _top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Mask (to -inf) the tail outside the smallest set with probability mass >= top_p."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
    # drop a token when the mass before it already reaches top_p (always keep the first)
    drop_sorted = (cum - torch.softmax(sorted_logits, dim=-1)) >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


@contextlib.contextmanager
def _bar(show: bool, description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar (or nothing when ``show`` is false); yields ``advance(n)``."""
    if not show:
        yield lambda n: None
        return
    with progress() as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise SublabError(f"batch_size must be >= 1 (got {batch_size})")


class HFBackend:
    """A transformers causal LM (optionally with a PEFT adapter) behind the Backend protocol.

    Attributes ``model`` and ``tokenizer`` are public for callers that need the raw objects.
    """

    exact = True

    def __init__(
        self,
        ref: ModelRef,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 64,
    ) -> None:
        if ref.provider != "hf":
            raise SublabError(
                f"model {ref.path} has provider = {ref.provider!r}; HFBackend runs provider 'hf'"
            )
        _check_batch_size(batch_size)
        self.ref = ref
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.batch_size = batch_size
        self.show_progress = True
        """Show a progress bar in long calls (callers with their own bar turn it off)."""
        path = local_path(ref.path)
        self.tokenizer = load_tokenizer(path)
        try:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=self.dtype)
        except (OSError, ValueError) as err:
            raise _missing_model_error(path, _first_line(err)) from None
        if ref.adapter is not None:
            if not Path(ref.adapter).exists():
                raise SublabError(
                    f"adapter path {ref.adapter} does not exist: train it first "
                    "or remove 'adapter' from the model reference"
                )
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, ref.adapter)
            if self.dtype == torch.float32:
                model = model.merge_and_unload()
            # in a low-precision dtype the adapter stays apart: merging a small update into
            # bf16 weights rounds most of it away
        self._take(model.to(self.device).eval())

    def _take(self, model: Any) -> None:
        """Make ``model`` (on ``self.device``, in eval mode) the one this backend runs."""
        self.model = model
        self._cache_arg = cache_argument(self.model)
        self._decoder_cache_arg = cache_argument(model_parts(self.model)[0])
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids: list[int] = sorted({eos} if isinstance(eos, int) else set(eos))
        self._grammars: dict[NumberGrammar, TokenGrammar] = {}

    def token_grammar(self, grammar: NumberGrammar) -> TokenGrammar:
        """``grammar`` over this model's vocabulary (built once per grammar)."""
        if grammar not in self._grammars:
            vocab = self.model.config.get_text_config().vocab_size
            self._grammars[grammar] = token_grammar(grammar, self.tokenizer, vocab, self.eos_ids)
        return self._grammars[grammar]

    @classmethod
    def around(cls, ref: ModelRef, model: Any, tokenizer: Any, batch_size: int = 64) -> HFBackend:
        """A backend that runs a model already loaded (it stays on its device and dtype;
        nothing is loaded again), e.g. an audit's cached reference."""
        _check_batch_size(batch_size)
        backend = cls.__new__(cls)
        first = next(model.parameters())
        backend.ref = ref
        backend.device, backend.dtype = first.device, first.dtype
        backend.batch_size = batch_size
        backend.show_progress = True
        backend.tokenizer = tokenizer
        backend._take(model.eval())
        return backend

    # ------------------------------------------------------------ prompts

    @property
    def name(self) -> str:
        """The model's path (plus adapter), as recorded in provenance."""
        return self.ref.path if self.ref.adapter is None else f"{self.ref.path}+{self.ref.adapter}"

    def prompt_ids(self, chat_: Chat) -> list[int]:
        """Token ids of a chat rendered by the chat template (never with a hidden default system
        prompt: :func:`~sublab.backends.chat_format.render_prompt`), ending in the assistant
        header."""
        text = render_prompt(self.tokenizer, chat_)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _left_pad(self, seqs: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            if s:
                ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
                mask[i, width - len(s) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def _batches(self, lengths: Sequence[int], size: int) -> list[list[int]]:
        """Indices grouped by length (stable sort), ``size`` at a time."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        return [order[i : i + size] for i in range(0, len(order), size)]

    # ------------------------------------------------------------ generate

    def generate(self, chats: Sequence[Chat], sampling: SamplingSpec) -> list[str]:
        """One sampled assistant reply per chat (same order), deterministic given the seed."""
        return [
            self.tokenizer.decode(t, skip_special_tokens=True).strip()
            for t in self.generate_ids(chats, sampling)
        ]

    def generate_ids(self, chats: Sequence[Chat], sampling: SamplingSpec) -> list[list[int]]:
        """Sampled token ids per chat, cut before the first EOS (which is not included)."""
        if not chats:
            return []
        prompts = [self.prompt_ids(c) for c in chats]
        batches = self._batches([len(p) for p in prompts], self.batch_size)
        results: list[list[int]] = [[] for _ in chats]
        keys = chat_keys(_seed_for(sampling.seed, "draws"), torch.arange(len(chats)))
        with _bar(self.show_progress and len(batches) > 1, "generate", len(chats)) as advance:
            for idx in batches:
                outs = self._sample_batch(
                    [prompts[i] for i in idx], sampling, keys[idx].to(self.device)
                )
                for i, toks in zip(idx, outs, strict=True):
                    results[i] = toks
                advance(len(idx))
        return results

    def _last_logits(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        pos: torch.Tensor,
        past: Any,
        rows: torch.Tensor | None,
    ) -> tuple[torch.Tensor, Any]:
        """Logits at the last position (float32; only the ids in ``rows`` when given, the head
        computed for those alone) and the updated KV cache."""
        step: dict[str, Any] = {"attention_mask": mask, "position_ids": pos, "use_cache": True}
        if rows is None:
            if past is not None:
                step[self._cache_arg] = past
            out = self.model(input_ids=ids, logits_to_keep=1, **step)
            return out.logits[:, -1, :].float(), getattr(out, self._cache_arg)
        if past is not None:
            step[self._decoder_cache_arg] = past
        decoder, _, _ = model_parts(self.model)
        out = decoder(input_ids=ids, **step)
        logits = head_logits(self.model, out.last_hidden_state[:, -1, :], rows)
        return logits, getattr(out, self._decoder_cache_arg)

    @torch.inference_mode()
    def _sample_batch(
        self, prompts: Sequence[list[int]], sampling: SamplingSpec, keys: torch.Tensor
    ) -> list[list[int]]:
        """Sample each prompt's continuation; ``keys[i]`` is prompt i's draw counter. With
        ``sampling.grammar`` only the grammar's candidate tokens have logits, each row's state
        masks them, and the draws index them."""
        ids, mask = self._left_pad(prompts)
        n = ids.shape[0]
        grammar = self.token_grammar(sampling.grammar) if sampling.grammar else None
        allowed = grammar.candidates.to(self.device) if grammar is not None else None
        states = [State()] * n
        eos = torch.tensor(self.eos_ids, device=self.device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits, past = self._last_logits(ids, mask, pos, None, allowed)
        next_pos = pos[:, -1:] + 1
        rows = torch.arange(n, device=self.device)  # original index of each row still sampling
        steps: list[tuple[torch.Tensor, torch.Tensor]] = []
        for step in range(sampling.max_new_tokens):
            scaled = logits / sampling.temperature
            if grammar is not None:
                live = torch.stack([grammar.mask(states[r]) for r in rows.tolist()])
                scaled = scaled.masked_fill(~live.to(self.device), float("-inf"))
            scaled = _top_p_filter(scaled, sampling.top_p)
            tok = gumbel_sample(scaled, step_keys(keys[rows], step))
            if grammar is not None:
                for r, j in zip(rows.tolist(), tok.tolist(), strict=True):
                    states[r] = grammar.advance(states[r], j)
                tok = allowed[tok]
            steps.append((rows, tok))
            if step == sampling.max_new_tokens - 1:
                break
            finished = torch.isin(tok, eos)
            if bool(finished.any()):
                # drop finished rows from the batch and the KV cache: no compute on dead rows
                keep = (~finished).nonzero().squeeze(-1)
                if keep.numel() == 0:
                    break
                past.reorder_cache(keep)
                tok, mask, next_pos, rows = tok[keep], mask[keep], next_pos[keep], rows[keep]
            ones = torch.ones((mask.shape[0], 1), dtype=mask.dtype, device=self.device)
            mask = torch.cat([mask, ones], 1)
            logits, past = self._last_logits(tok[:, None], mask, next_pos, past, allowed)
            next_pos = next_pos + 1
        results: list[list[int]] = [[] for _ in range(n)]
        eos_set = set(self.eos_ids)
        for r, t in steps:
            for i, tid in zip(r.tolist(), t.tolist(), strict=True):
                if tid not in eos_set:
                    results[i].append(tid)
        return results

    # ------------------------------------------------------------ scoring

    def continuation_ids(self, continuation: str) -> list[int]:
        """Token ids of a continuation, tokenized on its own (no merge across the boundary)."""
        return self.tokenizer(continuation, add_special_tokens=False)["input_ids"]

    def score(
        self, chats: Sequence[Chat], continuations: Sequence[str], prefix: str = ""
    ) -> list[float]:
        """log P(continuation | chat + assistant header + prefix), summed over its tokens, in
        float64 (the prefix and the continuation each tokenised on their own)."""
        if len(chats) != len(continuations):
            raise ValueError(
                f"score needs one continuation per chat ({len(chats)} chats, "
                f"{len(continuations)} continuations)"
            )
        head = self.continuation_ids(prefix) if prefix else []
        pairs = [
            (self.prompt_ids(c) + head, self.continuation_ids(t))
            for c, t in zip(chats, continuations, strict=True)
        ]
        return self.score_ids(pairs)

    def score_ids(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[float]:
        """Summed log-probabilities of ``cont`` after ``prompt`` for each (prompt, cont) pair.

        One-token continuations of the same prompt (an evaluation's candidate answers) share one
        next-token distribution of that prompt: one forward per prompt, not per candidate.
        """
        scores = [0.0] * len(pairs)
        single: dict[tuple[int, ...], list[int]] = {}
        for i, (p, c) in enumerate(pairs):
            if len(c) == 1:
                single.setdefault(tuple(p), []).append(i)
        prompts = list(single)
        for idx, logp in self._next_logprobs([list(p) for p in prompts]):
            for j, row in zip(idx, logp, strict=True):
                for i in single[prompts[j]]:
                    scores[i] = float(row[pairs[i][1][0]])
        todo = [i for i, (_, c) in enumerate(pairs) if len(c) > 1]
        lengths = [len(pairs[i][0]) + len(pairs[i][1]) for i in todo]
        vocab = self.model.config.get_text_config().vocab_size
        groups = self._token_budget_batches(lengths, vocab)
        with _bar(self.show_progress and len(groups) > 1, "score", len(todo)) as advance:
            for group in groups:
                idx = [todo[g] for g in group]
                for i, s in zip(idx, self._score_batch([pairs[i] for i in idx]), strict=True):
                    scores[i] = s
                advance(len(idx))
        return scores

    def _token_budget_batches(self, lengths: Sequence[int], vocab: int) -> list[list[int]]:
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        cur: list[int] = []
        for i in order:
            width = lengths[i]  # sorted ascending, so the newest is the widest
            if cur and (
                len(cur) >= self.batch_size or (len(cur) + 1) * width * vocab > _SCORE_LOGIT_BUDGET
            ):
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
        return batches

    @torch.inference_mode()
    def _score_batch(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[float]:
        seqs = [p + c for p, c in pairs]
        ids, mask = self._left_pad(seqs)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        width = ids.shape[1]
        out = []
        for r, (_, cont) in enumerate(pairs):
            k = len(cont)
            # logits at position t predict token t+1: the continuation is the last k tokens
            step_logits = logits[r, width - k - 1 : width - 1, :].double()
            logp = torch.log_softmax(step_logits, dim=-1)
            target = ids[r, width - k :]
            out.append(float(logp.gather(-1, target[:, None]).sum()))
        return out

    @torch.inference_mode()
    def _next_logprobs(
        self, prompts: Sequence[list[int]]
    ) -> Iterator[tuple[list[int], torch.Tensor]]:
        """Float64 log-softmax after each prompt, batched by length (:meth:`_batches`): yields
        (the batch's indices into ``prompts``, [n, vocab] on the CPU)."""
        for idx in self._batches([len(p) for p in prompts], self.batch_size):
            ids, mask = self._left_pad([prompts[i] for i in idx])
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(
                input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1
            ).logits[:, -1, :]
            yield idx, torch.log_softmax(logits.double(), dim=-1).cpu()

    def next_token_logprobs(self, chats: Sequence[Chat]) -> torch.Tensor:
        """Log-softmax over the vocabulary after each chat's assistant header: [n, vocab], cpu."""
        rows: list[torch.Tensor] = [torch.empty(0)] * len(chats)
        for idx, logp in self._next_logprobs([self.prompt_ids(c) for c in chats]):
            for i, row in zip(idx, logp.float(), strict=True):
                rows[i] = row
        return torch.stack(rows)


@register_backend("hf")
def _hf_backend(ref: ModelRef, settings: BackendSettings, api: Any = None) -> HFBackend:
    return HFBackend(
        ref, device=settings.device, dtype=settings.dtype, batch_size=settings.batch_size
    )
