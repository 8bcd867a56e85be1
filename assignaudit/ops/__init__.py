"""Public geometry ops (see the module docstrings)."""
