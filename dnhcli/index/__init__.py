"""Index: packed codes, the hash database (segments, lock, search), the Hamming search and ranking kernels."""
