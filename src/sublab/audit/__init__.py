"""Auditing distillation data for hidden traits: detectors that score rows, defences that
transform a dataset, and a benchmark on the model organism (``kind = "audit"``).

* :mod:`.context` — the rows under audit, the reference (and optional teacher) models, and
  the per-token statistics detectors share (computed once per model, system prompt and token
  sets); :mod:`.models` — the models and tokenizers they are computed with (loaded once);
* :mod:`.detectors` — one module per detector, registered by name (:data:`DETECTORS`);
* :mod:`.defences` — one module per dataset transform, registered by name (:data:`DEFENCES`);
* :mod:`.report` — JSON and Markdown reports; :mod:`.benchmark` — the audit benchmark.
"""

from __future__ import annotations

from sublab.audit.defences.base import DEFENCES, Defence, DefenceResult
from sublab.audit.detectors.base import DETECTORS, Detector, DetectorResult

__all__ = [
    "DEFENCES",
    "DETECTORS",
    "Defence",
    "DefenceResult",
    "Detector",
    "DetectorResult",
]
