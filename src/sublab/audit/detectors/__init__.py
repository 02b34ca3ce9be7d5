"""Detectors: one module per detector, each registered in :data:`~.base.DETECTORS`."""
