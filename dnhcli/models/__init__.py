"""Models: the registry (architectures and objectives), the networks and stronger encoders, the
losses and hash centres, encoding helpers and checkpoints."""
