"""Retrieval: hashing images into a database and querying it with a model, and result montages."""
