"""Defences: one module per dataset transform, each registered in :data:`~.base.DEFENCES`."""
