"""Typed errors. Every error a user can cause names the file and, when known, the line and
column (1-based) and what to do about it, so the CLI can print it without a stack trace."""

from __future__ import annotations


class CaffeError(Exception):
    """Base class of every error caffe2torch raises on purpose.

    ``path``, ``line`` and ``col`` locate the problem (any may be None); ``hint`` says how to
    fix it; ``code`` is the linter's code for the same problem (``C2T201``...) when it has
    one, so that ``caffe2torch lint`` and the builder can be compared.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        col: int | None = None,
        hint: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.col = col
        self.hint = hint
        self.code = code

    def location(self) -> str:
        parts = [p for p in (self.path, self.line, self.col) if p is not None]
        return ":".join(str(p) for p in parts)

    def __str__(self) -> str:
        loc = self.location()
        text = f"{loc}: {self.message}" if loc else self.message
        if self.hint:
            text += f"\n  help: {self.hint}"
        return text


class ParseError(CaffeError):
    """A text or binary file could not be read as the Caffe message it should hold."""


class UsageError(CaffeError):
    """A command-line flag value that cannot be used, or a file of the wrong kind for the
    command (exit code 2)."""


class UpgradeError(CaffeError):
    """Caffe's upgrade refuses the file (e.g. ``layer`` mixed with ``layers``)."""


class BuildError(CaffeError):
    """The network cannot be built: unknown layer type, bad bottom, wrong arity, shapes."""


class WeightsError(CaffeError):
    """A weights file does not fit the net (shape mismatch, corrupt blob)."""


class SolverError(CaffeError):
    """A solver file asks for something that cannot run."""


class DataError(CaffeError):
    """A data source (list file, image, LMDB, HDF5) is missing or malformed."""


class WriteError(CaffeError):
    """A file could not be written (missing folder, no permission, disk full)."""


class LegacyShapeError(WriteError, ValueError):
    """A blob of more than 4 axes written for a schema without BlobShape (num/channels/
    height/width only); a ValueError too, as the in-memory writers raised before."""


class ExportError(CaffeError):
    """A net (or one of its layers) cannot be written in the asked format (ONNX, Python)."""


_USER_CODE = "_caffe2torch_user_code"


def mark_user_code_error(exc: BaseException, where: str) -> BaseException:
    """Tag an exception raised by user code (a Python layer's setup, reshape, forward or
    backward) so that it reaches the caller with its own type, as in pycaffe; ``where``
    is added as a note naming the layer."""
    setattr(exc, _USER_CODE, True)
    add_note = getattr(exc, "add_note", None)  # BaseException.add_note: Python 3.11+
    if add_note is not None:
        add_note(where)
    return exc


def is_user_code_error(exc: BaseException) -> bool:
    return bool(getattr(exc, _USER_CODE, False))
