"""Stores of codes and metadata: the local hash database (segments, key index, deletions)."""
