"""A user's own images as a prepared dataset (`dnh prepare-data --images DIR`): the files read
as `dnh hash` reads them (`walk`), their labels and patients (`labels`), and the split,
keyed dataset folder (`own`)."""
