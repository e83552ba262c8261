"""`dnh serve`: the search service (FastAPI) and its web page."""
