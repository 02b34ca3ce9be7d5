"""Backends talk to models: generate, score, fine-tune. See base.Backend."""
