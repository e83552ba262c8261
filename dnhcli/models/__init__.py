"""Models: the network registry, the networks, their losses, encoding helpers and checkpoints."""
