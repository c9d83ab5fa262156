"""What every verb shares: error printing, exit codes, Caffe-style flag spelling."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from caffe2torch.errors import CaffeError, DataError, ParseError, UsageError, WriteError

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
    """A flag that cannot be used, a file of the wrong kind, or a file (net, list, image,
    output) we cannot read or write is a usage or I/O error (2); any other refusal, such as
    a net that cannot be built or a run that fails, is a failed run (1)."""
    return USAGE if isinstance(err, ParseError | WriteError | UsageError | DataError) else FAILED


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def printable(text: str) -> str:
    """``text`` with control characters shown as ``\\xNN`` (a binary file's bytes must not
    reach the terminal raw)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def format_error(err: CaffeError, severity: str = "error") -> str:
    """``path:line:col: error: message`` and, when the error has one, a ``help:`` line."""
    loc = err.location()
    text = f"{loc}: {severity}: {err.message}" if loc else f"{severity}: {err.message}"
    if err.hint:
        text += f"\n  help: {err.hint}"
    return printable(text)


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


class DeprecatedAlias(argparse.Action):
    """An old flag spelling kept working: stores into the new flag's ``dest`` and says once,
    on stderr, which spelling to use instead (``help=argparse.SUPPRESS`` keeps it out of
    --help)."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, new: str,
                 append: bool = False, **kwargs: Any) -> None:
        self.new = new
        self.append = append
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        note(f"{parser.prog}: warning: {option_string} is deprecated; use {self.new}")
        if self.append:
            current = list(getattr(namespace, self.dest, None) or [])
            current.extend(values if isinstance(values, list) else [values])
            setattr(namespace, self.dest, current)
        else:
            setattr(namespace, self.dest, values)
