"""Data: MedMNIST sources, pooling, seeded splits, the synthetic set, prepared datasets and image readers."""
