"""The data layer's names and defaults that the command line shows. Nothing here imports numpy,
so that `dnh --help` stays fast; the modules that use them import them from here."""

SPLITS = ("train", "val", "gallery", "query")
DEFAULT_RATIOS = (6.0, 1.0, 2.0, 1.0)  # train:val:gallery:query
ROOT_ENV = "DNH_MEDMNIST_ROOT"  # a MedMNIST root folder holding {flag}.npz
DEFAULT_SUBSETS = ("breast", "chest", "oct", "tissue")  # the reference's four
SYNTHETIC_PER_CLASS = 400
CHUNK = 4096  # images read, hashed and stored at a time: memory follows it, not the input
