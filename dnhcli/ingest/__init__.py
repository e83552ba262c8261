"""Ingest: inputs (files, a prepared split, a PACS) planned into keyed work units, decoded
and hashed in this process or by a Ray actor pool, and appended by one writer."""
