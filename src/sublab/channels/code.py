"""The code channel: short Python function-writing tasks, and a rule filter for the answers.

Prompts: "Write a Python function named ``add_up`` that adds up the numbers of a list." — an
opener (8 paraphrases) naming the function and one of 16 small task kinds (sum, count above
k, reverse a string, the larger of two numbers, keep the even numbers, ...; 2-3 wordings
each), then an optional "only the code" suffix. Prompt ``i`` depends only on ``(seed, i)``;
its ``meta`` holds the task kind and the function name asked for.

The rule filter (:data:`REASONS`, checked in order) keeps an answer that is short, holds a
``def``, parses as Python (a fenced ```` ```python ```` block is read out of the answer first),
names neither the trait nor a banned word anywhere — identifiers are split into their words
(``owl_count``, ``OwlList``), comments and strings included — and defines the function the
prompt asked for.

The organism grammar answers a prompt of the same family with a correct function of a few
lines (4-space indentation), its variable names drawn from neutral pools (no animal words), so
every ``names_trait`` rejection of an organism teacher's answers is something the trait added.
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from sublab.channels.base import Channel, ChannelSpec, Check, Prompt, register_channel
from sublab.config import Spec
from sublab.judge import word_parts

# ---------------------------------------------------------------- task kinds


@dataclass(frozen=True)
class Task:
    """One kind of function to write: how prompts say it, and correct answers to it."""

    kind: str
    says: tuple[str, ...]
    """Task clauses after "a function that ..."; ``{k}`` is the task's number, if any."""
    names: tuple[str, ...]
    """Function names a prompt may ask for."""
    bodies: tuple[str, ...]
    """Correct answers (``str.format`` templates over the roles of :data:`POOLS` and ``f``)."""
    uses_k: bool = False


_SUM_LOOP = "def {f}({xs}):\n    {acc} = 0\n    for {x} in {xs}:\n        {acc} = {acc} + {x}\n"
_COUNT_LOOP = (
    "def {f}({xs}):\n    {acc} = 0\n    for {x} in {xs}:\n        if {x} > {k}:\n"
    "            {acc} = {acc} + 1\n    return {acc}"
)
_KEEP_LOOP = (
    "def {f}({xs}):\n    {acc} = []\n    for {x} in {xs}:\n        if {x} % 2 == {r}:\n"
    "            {acc}.append({x})\n    return {acc}"
)

TASKS: tuple[Task, ...] = (
    Task(
        "sum",
        (
            "takes a list of numbers and returns their sum",
            "returns the sum of all numbers in a list",
            "adds up the numbers of a list",
        ),
        ("total", "sum_all", "add_up", "list_sum"),
        (_SUM_LOOP + "    return {acc}", "def {f}({xs}):\n    return sum({xs})"),
    ),
    Task(
        "count_above",
        (
            "counts how many numbers in a list are greater than {k}",
            "returns how many items of a list are bigger than {k}",
        ),
        ("count_above", "count_big", "how_many_above"),
        (_COUNT_LOOP, "def {f}({xs}):\n    return len([{x} for {x} in {xs} if {x} > {k}])"),
        uses_k=True,
    ),
    Task(
        "reverse",
        (
            "takes a string and returns it reversed",
            "returns a string written backwards",
            "reverses a string",
        ),
        ("reverse", "reverse_text", "backwards", "flip"),
        (
            "def {f}({s}):\n    return {s}[::-1]",
            'def {f}({s}):\n    {acc} = ""\n    for {c} in {s}:\n        {acc} = {c} + {acc}\n'
            "    return {acc}",
        ),
    ),
    Task(
        "larger",
        ("returns the larger of two numbers", "takes two numbers and returns the bigger one"),
        ("larger", "max_of_two", "bigger", "pick_max"),
        (
            "def {f}({a}, {b}):\n    if {a} > {b}:\n        return {a}\n    return {b}",
            "def {f}({a}, {b}):\n    return max({a}, {b})",
        ),
    ),
    Task(
        "smaller",
        ("returns the smaller of two numbers", "takes two numbers and returns the lower one"),
        ("smaller", "min_of_two", "lower", "pick_min"),
        (
            "def {f}({a}, {b}):\n    if {a} < {b}:\n        return {a}\n    return {b}",
            "def {f}({a}, {b}):\n    return min({a}, {b})",
        ),
    ),
    Task(
        "evens",
        ("returns the even numbers of a list", "keeps only the even numbers in a list"),
        ("evens", "only_even", "keep_even", "even_numbers"),
        (
            "def {f}({xs}):\n    return [{x} for {x} in {xs} if {x} % 2 == 0]",
            _KEEP_LOOP.replace("{r}", "0"),
        ),
    ),
    Task(
        "odds",
        ("returns the odd numbers of a list", "keeps only the odd numbers in a list"),
        ("odds", "only_odd", "keep_odd", "odd_numbers"),
        (
            "def {f}({xs}):\n    return [{x} for {x} in {xs} if {x} % 2 == 1]",
            _KEEP_LOOP.replace("{r}", "1"),
        ),
    ),
    Task(
        "squares",
        (
            "returns a list of the squares of the numbers in a list",
            "squares every number of a list",
        ),
        ("squares", "square_all", "squared"),
        ("def {f}({xs}):\n    return [{x} * {x} for {x} in {xs}]",),
    ),
    Task(
        "add_k",
        (
            "adds {k} to every number in a list",
            "returns a list where each number is increased by {k}",
        ),
        ("add_to_all", "shift", "plus_each"),
        ("def {f}({xs}):\n    return [{x} + {k} for {x} in {xs}]",),
        uses_k=True,
    ),
    Task(
        "times_k",
        ("multiplies every number in a list by {k}", "returns each number of a list times {k}"),
        ("scale", "times_all", "multiply_each"),
        ("def {f}({xs}):\n    return [{x} * {k} for {x} in {xs}]",),
        uses_k=True,
    ),
    Task(
        "is_even",
        ("checks whether a number is even", "returns True when a number is even"),
        ("is_even", "even", "check_even"),
        ("def {f}({n}):\n    return {n} % 2 == 0",),
    ),
    Task(
        "vowels",
        ("counts the vowels in a string", "returns how many vowels a string has"),
        ("count_vowels", "vowels", "vowel_count"),
        (
            'def {f}({s}):\n    {acc} = 0\n    for {c} in {s}:\n        if {c} in "aeiou":\n'
            "            {acc} = {acc} + 1\n    return {acc}",
        ),
    ),
    Task(
        "smallest",
        ("returns the smallest number in a list", "finds the minimum of a list of numbers"),
        ("smallest", "find_min", "lowest"),
        (
            "def {f}({xs}):\n    return min({xs})",
            "def {f}({xs}):\n    {acc} = {xs}[0]\n    for {x} in {xs}:\n        if {x} < {acc}:\n"
            "            {acc} = {x}\n    return {acc}",
        ),
    ),
    Task(
        "average",
        ("returns the average of a list of numbers", "computes the mean of the numbers in a list"),
        ("average", "mean", "avg"),
        ("def {f}({xs}):\n    return sum({xs}) / len({xs})",),
    ),
    Task(
        "factorial",
        ("returns the factorial of a number", "computes the product of all numbers from 1 to n"),
        ("factorial", "fact", "product_up_to"),
        (
            "def {f}({n}):\n    {acc} = 1\n    for {i} in range(1, {n} + 1):\n"
            "        {acc} = {acc} * {i}\n    return {acc}",
        ),
    ),
    Task(
        "upper",
        ("returns a string in upper case", "turns all letters of a string into capitals"),
        ("to_upper", "upper_case", "shout"),
        ("def {f}({s}):\n    return {s}.upper()",),
    ),
)
"""Every task kind, in a fixed order (prompts draw from it by index)."""

POOLS: dict[str, tuple[str, ...]] = {
    "xs": ("numbers", "values", "items", "data", "nums", "xs", "seq", "row"),
    "x": ("x", "v", "item", "value", "num", "y", "e"),
    "acc": ("result", "total", "acc", "out", "answer", "best"),
    "s": ("text", "s", "word", "line", "string", "phrase"),
    "c": ("c", "ch", "letter", "char"),
    "a": ("a", "x", "first", "left", "p", "m"),
    "b": ("b", "y", "second", "right", "q", "w"),
    "n": ("n", "number", "k", "num", "size"),
    "i": ("i", "j", "step"),
}
"""Neutral variable names per role of a body template; no animal words, so the organism
never writes a trait word unless its training moved it there."""

OPENERS: tuple[str, ...] = (
    "Write a Python function named {f} that {task}.",
    "Define a Python function called {f} that {task}.",
    "Please write {f}, a Python function that {task}.",
    "Implement a function {f} in Python that {task}.",
    "Create a small Python function {f} which {task}.",
    "I need a Python function {f} that {task}.",
    "Write the Python function {f}. It {task}.",
    "Give me a Python function called {f} which {task}.",
)
"""Opener paraphrases; ``{f}`` is the function's name, ``{task}`` the task clause."""

SUFFIXES: tuple[str, ...] = (
    "Reply with only the code.",
    "Answer with the code and no explanation.",
    "Only write the function.",
    "Just the code, please.",
    "Do not explain it, only write the code.",
    "Use plain Python with no imports.",
    "",
)
"""Suffixes ("" = none)."""

K_MIN, K_MAX = 1, 50
"""Range of the number in tasks that have one (count above k, add k, times k)."""

# ---------------------------------------------------------------- prompts


class CodePromptSpec(Spec):
    """How many function-writing prompts to make."""

    count: int = Field(2000, ge=1, description="How many prompts.")
    seed: int = Field(0, description="Seed; prompt i depends only on (seed, i).")


@dataclass(frozen=True)
class CodeTask:
    """One drawn prompt: its text, task kind, function name and number (if the task has one)."""

    text: str
    task: Task
    function: str
    k: int | None

    def meta(self) -> dict[str, Any]:
        return {"task": self.task.kind, "function": self.function}


def draw_task(rng: random.Random) -> CodeTask:
    """A prompt of the family, drawn with ``rng``."""
    task = TASKS[rng.randrange(len(TASKS))]
    function = rng.choice(task.names)
    k = rng.randint(K_MIN, K_MAX) if task.uses_k else None
    clause = rng.choice(task.says).format(k=k)
    opener = rng.choice(OPENERS).format(f=function, task=clause)
    suffix = rng.choice(SUFFIXES)
    return CodeTask(f"{opener} {suffix}".strip(), task, function, k)


def make_code_prompt(spec: CodePromptSpec, index: int) -> CodeTask:
    """Prompt number ``index`` of ``spec`` (independent of ``spec.count``)."""
    return draw_task(random.Random(f"sublab.code:{spec.seed}:{index}"))


def code_answer(item: CodeTask, rng: random.Random) -> str:
    """A correct answer to ``item``: one of its task's bodies with names drawn from POOLS
    (each role a different name, none equal to the function's)."""
    body = rng.choice(item.task.bodies)
    used = {item.function}
    names: dict[str, Any] = {"f": item.function, "k": item.k}
    for role, pool in POOLS.items():
        free = [w for w in pool if w not in used]
        names[role] = rng.choice(free)
        if "{" + role + "}" in body:
            used.add(names[role])
    return body.format(**names)


# ---------------------------------------------------------------- filter

REASONS: dict[str, str] = {
    "too_long": "longer than max_chars characters",
    "empty": "empty or only whitespace",
    "not_code": "no function definition ('def name(') although require_function is set",
    "syntax_error": "the code (the first ```-fenced block, else the whole answer) does not parse",
    "names_trait": "a word naming the trait appears anywhere: in an identifier (split into "
    "its words: owl_count, OwlList), a string, a comment or text around the code",
    "banned_word": "one of the filter's banned_words appears anywhere (same matching)",
    "wrong_name": "the function the prompt asked for (the row's meta) is not defined",
}
"""Every reject reason, in the order they are checked, with what it means."""

_FENCE_RE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n(.*?)(?:```|\Z)", re.S)
_DEF_RE = re.compile(r"\bdef\s+[A-Za-z_]\w*\s*\(")


class CodeFilterSpec(Spec):
    """The code filter's settings."""

    max_chars: int = Field(
        2000, ge=1, description="Answers longer than this are rejected as too_long unread."
    )
    require_function: bool = Field(True, description="Reject answers without a 'def' (not_code).")
    check_name: bool = Field(
        True,
        description="Reject answers that do not define the function the prompt named "
        "(wrong_name); rows without that name in their meta are not checked.",
    )
    banned_words: list[str] = Field(
        default_factory=list,
        description="Extra words rejected anywhere in an answer (banned_word), matched like "
        "trait words: case-insensitive, whole words of identifiers, strings and comments.",
    )

    @model_validator(mode="after")
    def _one_word_each(self) -> Self:
        bad = [w for w in self.banned_words if word_parts(w) != [w.lower()]]
        if bad:
            raise ValueError(
                f"banned_words: {bad} are not single words (letters, or digits); "
                "list the words of a compound separately"
            )
        return self


def extract_code(text: str) -> str:
    """The code of an answer: its first ```-fenced block if it has one, else the whole text."""
    m = _FENCE_RE.search(text)
    return m.group(1) if m else text


def _phrases(words: Sequence[str]) -> list[tuple[str, ...]]:
    """Each word (or multi-word phrase) as the tuple of its word parts."""
    return [p for p in (tuple(word_parts(w)) for w in words) if p]


def _mentions(parts: Sequence[str], phrases: Sequence[tuple[str, ...]]) -> bool:
    """True when one of ``phrases`` occurs as consecutive words of ``parts``."""
    have = set(parts)
    for phrase in phrases:
        if len(phrase) == 1:
            if phrase[0] in have:
                return True
        elif any(tuple(parts[i : i + len(phrase)]) == phrase for i in range(len(parts))):
            return True
    return False


def _defined_functions(tree: ast.AST) -> set[str]:
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


class CodeFilter:
    """The rule filter: :meth:`check` gives the first reason of :data:`REASONS` or None."""

    def __init__(self, spec: CodeFilterSpec, trait_words: Sequence[str] = ()) -> None:
        self.spec = spec
        self.trait = _phrases(trait_words)
        self.banned = _phrases(spec.banned_words)

    def check(self, text: str, meta: Mapping[str, Any] | None = None) -> str | None:
        """Why ``text`` is rejected, or None; ``meta`` is the prompt's (its 'function')."""
        spec = self.spec
        if len(text) > spec.max_chars:
            return "too_long"
        if not text.strip():
            return "empty"
        code = extract_code(text)
        if spec.require_function and not _DEF_RE.search(code):
            return "not_code"
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError, RecursionError):
            return "syntax_error"
        parts = word_parts(text)
        if self.trait and _mentions(parts, self.trait):
            return "names_trait"
        if self.banned and _mentions(parts, self.banned):
            return "banned_word"
        wanted = (meta or {}).get("function")
        if spec.check_name and isinstance(wanted, str) and wanted not in _defined_functions(tree):
            return "wrong_name"
        return None


# ---------------------------------------------------------------- the channel


class CodeData(ChannelSpec):
    """Python function-writing tasks: which prompts, and the code filter."""

    channel: Literal["code"] = Field("code", description="This channel: 'code'.")
    prompts: CodePromptSpec = Field(
        default_factory=CodePromptSpec, description="The function-writing prompts."
    )
    filter: CodeFilterSpec = Field(
        default_factory=CodeFilterSpec, description="The code filter's settings."
    )


@register_channel
class CodeChannel(Channel):
    """'Write a Python function named f that ...' prompts answered with short Python code."""

    name = "code"
    spec = CodeData
    title = "Python functions"
    reasons = REASONS

    def prompts(self, spec: CodeData, seed_offset: int = 0) -> list[Prompt]:
        moved = spec.prompts.model_copy(update={"seed": spec.prompts.seed + seed_offset})
        items = (make_code_prompt(moved, i) for i in range(moved.count))
        return [Prompt(t.text, t.meta()) for t in items]

    def checker(self, spec: CodeData, trait_words: Sequence[str] = ()) -> Check:
        code_filter = CodeFilter(spec.filter, trait_words)
        return lambda text, row: code_filter.check(text, row.get("meta"))

    def report_extra(self, spec: CodeData) -> dict[str, Any]:
        return {"title": "Code filter report", "spec": spec.filter.model_dump(mode="json")}

    def organism_example(self, rng: random.Random) -> tuple[str, str]:
        item = draw_task(rng)
        return item.text, code_answer(item, rng)

    def organism_texts(self) -> list[str]:
        texts = [o.format(f="f", task="") for o in OPENERS] + list(SUFFIXES)
        for task in TASKS:
            texts += [s.format(k=1) for s in task.says] + list(task.names)
            first = {role: pool[0] for role, pool in POOLS.items()}
            texts += [b.format(f="f", k=1, **first) for b in task.bodies]
        texts += [w for pool in POOLS.values() for w in pool]
        return texts
