"""dnh: content-based medical image retrieval with deep neural hashing."""

__version__ = "0.1.0"
