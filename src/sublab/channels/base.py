"""What a channel is, and the registry that finds channels by name.

A *channel* carries hidden traits: a family of trait-free prompts (number sequences, code,
chain-of-thought) whose answers a teacher writes and a filter cleans. A channel says

- which prompts a teacher answers (:meth:`Channel.prompts`, seeded, each with metadata such as
  the expected answer of a word problem);
- which answers its rule filter keeps, each rejected one with a reason
  (:meth:`Channel.checker`); an optional judge model (or the organism's rule judge) looks at
  what the rule kept (``judge`` in the channel's spec);
- how the model organism learns to answer such prompts (:meth:`Channel.organism_example`,
  :meth:`Channel.organism_texts`), so that every channel runs offline end to end.

Its settings are one spec class (a :class:`ChannelSpec` subclass whose ``channel`` field is a
``Literal`` of its name); configs pick the channel with ``channel = "<name>"`` in their
``[data]`` table and the rest of the table is validated against that class.

Adding a channel is one module in ``sublab/channels/`` (found automatically) or in another
package that names it under the ``sublab.channels`` entry-point group; see docs/channels.md.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import Field, SerializeAsAny, WrapValidator, model_validator
from pydantic_core import PydanticCustomError

from sublab.backends.base import SamplingSpec
from sublab.backends.grammar import NumberGrammar
from sublab.config import Spec
from sublab.errors import SublabError
from sublab.filtering import FilterResult, apply_check
from sublab.judge import JudgeSpec
from sublab.registry import Registry

ENTRY_POINT_GROUP = "sublab.channels"


class ChannelSpec(Spec):
    """Settings every channel has; a channel's own spec class adds its prompts and filter."""

    channel: str = Field(description="Which channel: 'numbers', 'code', 'cot', ...")
    sampling: SamplingSpec = Field(
        default_factory=SamplingSpec, description="How teachers sample (the paper: temperature 1)."
    )
    judge: JudgeSpec | None = Field(
        None,
        description="A judge that looks at every row the rule filter kept and rejects the "
        "flagged ones (and the ones whose verdict it could not read). None: rule filter only.",
    )
    chunk_size: int = Field(512, ge=1, description="Rows per resumable generation chunk.")
    constrain: bool = Field(
        False,
        description="Constrained decoding: teachers sample only answers of the channel's "
        "grammar (numbers: a list of numbers with one separator, optional brackets and "
        "period; only digits, separators and end of turn can be sampled). For real models, "
        "which answer a numbers prompt cleanly about one time in four; the channel's filter "
        "still runs on what they write. Local models only.",
    )

    keyless: ClassVar[dict[str, Any]] = {"constrain": False}

    @model_validator(mode="after")
    def _grammar_to_constrain(self) -> ChannelSpec:
        known = self.channel in channel_names()
        if self.constrain and known and get_channel(self.channel).grammar(self) is None:
            raise ValueError(
                f"constrain: the {self.channel!r} channel has no grammar to constrain "
                "decoding to; set constrain = false"
            )
        return self

    @classmethod
    def resolve_spec_class(cls, raw: Any) -> type[Spec] | None:
        """The spec class a raw ``[data]`` table validates against (for error hints)."""
        name = raw.get("channel", DEFAULT_CHANNEL) if isinstance(raw, dict) else None
        return get_channel(name).spec if name in channel_names() else None


@dataclass(frozen=True)
class Prompt:
    """One trait-free prompt and what the filter needs to know about it (``meta``)."""

    text: str
    meta: dict[str, Any] = field(default_factory=dict)


Check = Callable[[str, Mapping[str, Any]], "str | None"]
"""``check(completion, row) -> reason or None``: None keeps the row; ``row`` is the generated
row (its ``meta`` holds the prompt's metadata)."""


class Channel(ABC):
    """A carrier of hidden traits (see the module docstring)."""

    name: ClassVar[str]
    """Registry name; the ``channel`` value of its spec."""
    spec: ClassVar[type[ChannelSpec]]
    """The channel's settings."""
    title: ClassVar[str]
    """What the data is, in a few words ("number sequences")."""
    reasons: ClassVar[Mapping[str, str]]
    """Every reject reason of the rule filter, in the order checked, with what it means."""

    @abstractmethod
    def prompts(self, spec: Any, seed_offset: int = 0) -> list[Prompt]:
        """The channel's prompts for ``spec``, with their prompt seed moved by ``seed_offset``
        (experiments give each seed its own prompts)."""

    @abstractmethod
    def checker(self, spec: Any, trait_words: Sequence[str] = ()) -> Check:
        """The rule filter. ``trait_words`` are words that name the trait (every form): a
        channel whose answers can name things rejects rows that mention them."""

    def grammar(self, spec: Any) -> NumberGrammar | None:
        """The grammar of this channel's answers, for constrained decoding (``constrain``);
        None: the channel's answers are free text."""
        return None

    def sampling(self, spec: ChannelSpec) -> SamplingSpec:
        """How a teacher samples the channel: ``spec.sampling``, constrained to the channel's
        grammar when ``spec.constrain``."""
        if not spec.constrain:
            return spec.sampling
        return spec.sampling.model_copy(update={"grammar": self.grammar(spec)})

    def report_extra(self, spec: Any) -> dict[str, Any]:
        """Channel-specific facts for the filter report (e.g. the banned numbers)."""
        return {}

    def filter_rows(
        self,
        spec: Any,
        rows: Iterable[dict[str, Any]],
        trait_words: Sequence[str] = (),
        field: str = "completion",
        examples: int = 5,
    ) -> FilterResult:
        """The rule filter over ``rows``: kept, rejected (with reasons) and the report."""
        return apply_check(
            rows,
            self.checker(spec, trait_words),
            field=field,
            examples=examples,
            extra={"channel": self.name, **self.report_extra(spec)},
        )

    def organism_example(self, rng: random.Random) -> tuple[str, str]:
        """A (prompt, answer) pair for the organism's pretraining corpus, drawn with ``rng``."""
        raise SublabError(f"channel {self.name!r} has no organism grammar")

    def organism_texts(self) -> list[str]:
        """Texts whose words the organism's vocabulary must hold to write this channel."""
        return []


_REGISTRY: Registry[Channel] = Registry("channel", "sublab.channels", ENTRY_POINT_GROUP)
CHANNELS: dict[str, Channel] = _REGISTRY.items
"""name -> channel instance."""
DEFAULT_CHANNEL = "numbers"

C = TypeVar("C", bound=type[Channel])


def register_channel(cls: C) -> C:
    """Class decorator: register a channel under ``cls.name``."""
    return _REGISTRY.register(cls)


def channel_names() -> list[str]:
    """Names of every registered channel (this package's modules and entry points)."""
    return _REGISTRY.names()


def get_channel(name: str) -> Channel:
    """The channel registered as ``name``; a SublabError lists the known ones."""
    return _REGISTRY.get(name)


def _validate_channel_data(value: Any, handler: Any) -> Any:
    if isinstance(value, ChannelSpec):
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError("channel_table", "expected a table with a 'channel' key")
    name = value.get("channel", DEFAULT_CHANNEL)
    if name not in channel_names():
        raise PydanticCustomError(
            "unknown_channel",
            f"unknown channel {name!r} (known: {', '.join(channel_names())})",
        )
    return get_channel(name).spec.model_validate({**value, "channel": name})


ChannelData = Annotated[SerializeAsAny[ChannelSpec], WrapValidator(_validate_channel_data)]
"""A ``[data]`` table: its ``channel`` key (default 'numbers') picks the spec class."""


def default_data(**fields: Any) -> ChannelSpec:
    """The default channel's spec with ``fields`` set."""
    return get_channel(DEFAULT_CHANNEL).spec.model_validate(fields)
