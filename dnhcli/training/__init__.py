"""Training: the trainer, its per-epoch log and augmentation."""
