"""The one error family of dnh: every failure a user can act on is a `DnhError`."""

from __future__ import annotations


class DnhError(Exception):
    """A failure with a message a user can act on and an optional hint."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class InputError(DnhError):
    """A bad argument or input file (wrong shape, dtype, value or option)."""


class DataError(DnhError):
    """A dataset or MedMNIST source file is missing, corrupt or inconsistent."""


class DownloadError(DataError):
    """A MedMNIST file could not be downloaded or failed its checksum."""


class OutputExistsError(DnhError):
    """The output location exists and would be overwritten."""


class ModelError(DnhError):
    """A checkpoint or exported model is missing, corrupt or does not match."""
