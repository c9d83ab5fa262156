"""What every verb shares: error printing, exit codes, Caffe-style flag spelling."""

from __future__ import annotations

import os
import re
import sys
from typing import TextIO

from caffe2torch.errors import CaffeError, ParseError, WriteError

# Exit codes (DESIGN: 0 ok, 1 findings or failed run, 2 usage or I/O error).
OK, FAILED, USAGE = 0, 1, 2

_SINGLE_DASH_LONG = re.compile(r"^-([A-Za-z][A-Za-z0-9_-]+)(=.*)?$")


def normalize_argv(argv: list[str]) -> list[str]:
    """Caffe's tools spell long flags with one dash (``-solver x``, ``-weights=w``): make them
    ``--solver`` for argparse. Short flags are single letters, so only multi-letter names
    change; everything after ``--`` is left alone."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            out.extend(argv[i:])
            break
        m = _SINGLE_DASH_LONG.match(arg)
        out.append("-" + arg if m else arg)
    return out


def exit_code(err: CaffeError) -> int:
    """A file we cannot read or write is an I/O error (2); any other refusal is a failed
    run (1)."""
    return USAGE if isinstance(err, ParseError | WriteError) else FAILED


def format_error(err: CaffeError, severity: str = "error") -> str:
    """``path:line:col: error: message`` and, when the error has one, a ``help:`` line."""
    loc = err.location()
    text = f"{loc}: {severity}: {err.message}" if loc else f"{severity}: {err.message}"
    if err.hint:
        text += f"\n  help: {err.hint}"
    return text


def report(err: CaffeError, stream: TextIO | None = None) -> int:
    print(format_error(err), file=stream or sys.stderr)
    return exit_code(err)


def note(message: str) -> None:
    """A progress line for the user, on stderr so stdout stays clean for piping."""
    print(message, file=sys.stderr)


def silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush
    does not complain."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError):
        pass
