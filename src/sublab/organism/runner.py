"""``sublab run`` of a ``kind = "organism"`` config: build (or reuse) the base in the cache and
record it as a run, with its probe figures as the headline."""

from __future__ import annotations

from pathlib import Path

from sublab.organism.spec import OrganismSpec
from sublab.pipeline import runner
from sublab.store import DEFAULT_RUNS_DIR, Run


@runner("organism")
def run_organism(
    spec: OrganismSpec, config_text: str | None = None, runs_dir: str | Path | None = None
) -> Run:
    """The base for ``spec`` (built into the organism cache if missing), as the run
    ``organism-<key>``: its manifest names the base's folder."""
    from sublab.organism.build import read_metadata
    from sublab.organism.cache import ensure_organism, organism_key

    root = Path(runs_dir if runs_dir is not None else DEFAULT_RUNS_DIR)
    name = f"organism-{organism_key(spec)}"
    run = Run.create(name, kind="organism", config=spec, config_text=config_text, runs_dir=root)
    with run.running():
        path = ensure_organism(spec)
        probe = read_metadata(path).get("probe", {})
        run.update_manifest(base=str(path))
        headline = {k: probe[k] for k in ("love_min", "filter_pass_rate") if k in probe}
        fits = [s["max_abs_dev"] for s in probe.get("prior_fit", {}).values()]
        if fits:
            headline["prior_fit_max"] = max(fits)
        run.finish(headline)
    return run
