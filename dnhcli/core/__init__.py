"""The dnh library: data, models, losses, training, codes, search and metrics.

Nothing in this package imports typer or rich; progress reaches callers through
plain callbacks.
"""
