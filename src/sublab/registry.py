"""A registry of named plug-ins found by importing a package's modules (and, optionally, the
modules named under an entry-point group): channels and traits use one each."""

from __future__ import annotations

import importlib
import pkgutil
from importlib import metadata
from typing import Generic, TypeVar

from sublab.errors import SublabError

T = TypeVar("T")
C = TypeVar("C", bound=type)


class Registry(Generic[T]):
    """Instances of registered classes by name.

    The first lookup imports every module of ``package`` (but ``base`` and private ones) and
    loads every entry point of ``group``, so a plug-in registers itself by being a module there.
    """

    def __init__(self, what: str, package: str, group: str | None = None) -> None:
        self.what = what
        self.package = package
        self.group = group
        self.items: dict[str, T] = {}
        self._discovered = False

    def register(self, cls: C) -> C:
        """Class decorator: register an instance of ``cls`` under ``cls.name``."""
        self.items[cls.name] = cls()
        return cls

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            if info.name != "base" and not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")
        if self.group is not None:
            for ep in metadata.entry_points(group=self.group):
                ep.load()

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._discover()
        return sorted(self.items)

    def get(self, name: str) -> T:
        """The plug-in registered as ``name``; a SublabError lists the known ones."""
        if name not in self.names():
            raise SublabError(f"unknown {self.what} {name!r} (known: {', '.join(self.names())})")
        return self.items[name]
