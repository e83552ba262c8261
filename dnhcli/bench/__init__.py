"""Benchmarks: inference engines, timed runs and their reports, search and training speed."""
