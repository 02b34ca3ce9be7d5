"""Typed specs loaded from TOML.

Every config is data: a TOML file whose top-level ``kind`` names a registered pydantic model.
Validation reports every problem at once, each with its dotted path
(``teacher.sampling.temperature: must be > 0``). Nothing in a config can execute code.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from sublab.errors import ConfigError
from sublab.textfile import utf8_problem


class Spec(BaseModel):
    """Base of every spec: unknown keys are rejected and instances are immutable.

    ``keyless`` names fields added after a spec already keyed cached artifacts, with the
    default that leaves them out of the spec's dump (and so out of every artifact key): older
    caches stay valid until such a field is set.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    keyless: ClassVar[dict[str, Any]] = {}

    @model_serializer(mode="wrap")
    def _dump_without_keyless_defaults(
        self, handler: SerializerFunctionWrapHandler
    ) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name, default in self.keyless.items():
            if name in data and data[name] == default:
                data.pop(name)
        return data


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _safe_name(v: str) -> str:
    if not _NAME_RE.match(v):
        raise ValueError("use letters, digits, '.', '_' or '-' (it names a folder)")
    return v


SafeName = Annotated[str, AfterValidator(_safe_name)]
"""A name that becomes a folder or file name: letters, digits, '.', '_', '-'."""

S = TypeVar("S", bound=type[Spec])

CONFIG_KINDS: dict[str, type[Spec]] = {}
# Modules that register config kinds; imported on first lookup so that `sublab check` knows them.
BUILTIN_KIND_MODULES: list[str] = [
    "sublab.pipeline",
    "sublab.experiment.run",
    "sublab.experiment.sweep",
    "sublab.organism.spec",
    "sublab.audit.spec",
    "sublab.mnist.config",
]


def config_kind(name: str) -> Callable[[S], S]:
    """Class decorator: register a top-level spec under ``kind = "<name>"``."""

    def register(cls: S) -> S:
        CONFIG_KINDS[name] = cls
        return cls

    return register


def _load_builtin_kinds() -> None:
    for module in BUILTIN_KIND_MODULES:
        importlib.import_module(module)


_PHRASES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "missing": "required field is missing",
}


def _field_names(
    model: type[BaseModel], loc: tuple[Any, ...], data: Any = None
) -> list[str] | None:
    """The field names allowed at ``loc`` (for 'unknown key' messages), if resolvable.

    ``data`` is the raw input: a field whose spec class depends on it (a ``[data]`` table's
    ``channel``) resolves through the class's ``resolve_spec_class(raw)``.
    """
    current: Any = model
    raw = data
    for part in loc:
        if isinstance(part, int):  # an item of a list field: current is already its class
            raw = raw[part] if isinstance(raw, list) and part < len(raw) else None
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = field.annotation
        raw = raw.get(str(part)) if isinstance(raw, dict) else None
        origin = getattr(current, "__origin__", None)
        if origin is list and getattr(current, "__args__", None):
            current = current.__args__[0]
        resolve = getattr(current, "resolve_spec_class", None)
        if resolve is not None:
            current = resolve(raw) or current
    if isinstance(current, type) and issubclass(current, BaseModel):
        resolve = getattr(current, "resolve_spec_class", None)
        if resolve is not None:
            current = resolve(raw) or current
        return sorted(current.model_fields)
    return None


def format_validation_error(
    err: ValidationError, model: type[BaseModel], data: Any = None
) -> list[str]:
    """Turn a pydantic error into one line per problem: ``a.b.c: message`` (``data``, the raw
    input, resolves the allowed keys of tables whose spec class depends on their content)."""
    problems = []
    for e in err.errors():
        loc = tuple(e["loc"])
        path = ".".join(str(p) for p in loc) or "<top level>"
        kind = e["type"]
        if kind == "extra_forbidden":
            allowed = _field_names(model, loc[:-1], data)
            hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
            msg = f"unknown key{hint}"
        elif kind in _PHRASES:
            raw = e.get("ctx") or {}
            ctx = {k: f"{v:g}" if isinstance(v, float) else v for k, v in raw.items()}
            msg = _PHRASES[kind].format(**ctx)
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if kind.endswith("_type") or kind.endswith("_parsing"):
                msg += f" (got {e.get('input')!r})"
        problems.append(f"{path}: {msg}")
    return problems


M = TypeVar("M", bound=BaseModel)


def validate(data: dict[str, Any], model: type[M], source: str | Path) -> M:
    """Validate ``data`` against ``model``; raise ConfigError listing every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, format_validation_error(err, model, data)) from None


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; syntax errors and bytes that are not UTF-8 name the file and line."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(p, ["file not found; pass the path of a .toml config"])
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        line, message = utf8_problem(err)
        raise ConfigError(p, [f"line {line}: {message}"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(p, [f"TOML syntax error: {err}"]) from None


def load_config(path: str | Path, expect: type[M] | None = None) -> M | Spec:
    """Load a TOML config: its ``kind`` picks the spec model (or ``expect`` forces one)."""
    data = read_toml(path)
    if expect is not None:
        data.pop("kind", None)
        return validate(data, expect, path)
    _load_builtin_kinds()
    kind = data.pop("kind", None)
    if kind is None:
        known = ", ".join(sorted(CONFIG_KINDS)) or "none registered"
        raise ConfigError(path, [f"kind: required field is missing (one of: {known})"])
    if kind not in CONFIG_KINDS:
        known = ", ".join(sorted(CONFIG_KINDS))
        raise ConfigError(path, [f"kind: unknown kind {kind!r} (one of: {known})"])
    return validate(data, CONFIG_KINDS[kind], path)


def kind_of(spec: Spec) -> str:
    """The registered kind name of a top-level spec instance."""
    for name, cls in CONFIG_KINDS.items():
        if type(spec) is cls:
            return name
    raise KeyError(type(spec).__name__)
