"""Evaluation: retrieval metrics, the reference and tie-aware protocols, plots and baselines."""
