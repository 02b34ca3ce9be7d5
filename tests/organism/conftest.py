"""The default organism base, built once and cached across test sessions.

The threshold tests (prior fit ±0.02, love ≥ 0.7, filter ≥ 90%) need the full default
recipe: reduced builds (400–600 steps) measured on the shared 2-core box missed the love and
filter targets, so the fixture builds the default spec (with 1 torch thread, as tests run)
into ``.pytest_cache`` — or reuses it from there, keyed by spec + build-code hash.
"""

from __future__ import annotations

import pytest

from sublab.organism.cache import ensure_organism
from sublab.organism.spec import OrganismSpec, TrainSpec


@pytest.fixture(scope="session")
def organism_spec():
    return OrganismSpec(train=TrainSpec(threads=1))


@pytest.fixture(scope="session")
def organism_base(organism_spec, pytestconfig):
    """Path of the built default base (probes included)."""
    cache = pytestconfig.cache.mkdir("sublab-organism")
    return ensure_organism(organism_spec, cache_dir=cache)
