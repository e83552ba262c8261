"""Evaluation: retrieval metrics, the reference, tie-aware and two-stage protocols, instance
retrieval under alterations, plots and baselines."""
