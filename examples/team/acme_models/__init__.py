"""Acme's own model code: the feature transformer and the estimator class its pipeline config names.

The template never writes here; the config's `code_paths` logs this folder with the model, so the gate,
the bento and the serving image import this very copy.
"""
