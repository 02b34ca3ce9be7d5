"""The default organism base, built once and cached across test sessions.

The threshold tests (prior fit ±0.02, love ≥ 0.7, filter ≥ 90%) need the full default
recipe (850 steps; shorter builds missed the love and filter targets), so the fixture builds
the default spec into the user's organism cache
(``$SUBLAB_CACHE_DIR`` or ``~/.cache/sublab``) — or reuses it from there, keyed by spec +
build-code hash. ``make demo`` uses the same cache, so its seed-0 base is this one.
"""

from __future__ import annotations

import pytest

from sublab.organism.cache import ensure_organism
from sublab.organism.spec import OrganismSpec


@pytest.fixture(scope="session")
def organism_spec():
    return OrganismSpec()


@pytest.fixture(scope="session")
def organism_base(organism_spec):
    """Path of the built default base (probes included)."""
    return ensure_organism(organism_spec)
