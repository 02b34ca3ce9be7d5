"""sublab: reproduce, vary and audit subliminal learning."""

__version__ = "0.1.0"
