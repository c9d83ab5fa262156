"""State shared by the rules of one lint run: the file, its repaired copy, the options,
and the findings so far."""

from __future__ import annotations

from dataclasses import dataclass, field

from caffe2torch.lint.codes import CODES, matches
from caffe2torch.lint.diagnostic import Diagnostic, Fix
from caffe2torch.lint.source import Buffer, Text


@dataclass
class Options:
    """What to check: ``select``/``ignore`` take codes, prefixes (``C2T2``), family names
    (``graph``) or rule names; ``check_data`` opens the data list files; ``weights`` is a
    caffemodel to compare with the net."""

    select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    check_data: bool = False
    weights: str | None = None
    proto: str | None = None  # the fork's caffe.proto: its own fields are not reported

    def wants(self, code: str) -> bool:
        if self.select and not matches(code, self.select):
            return False
        return not (self.ignore and matches(code, self.ignore))


class Context:
    def __init__(self, path: str | None, text: str, options: Options | None = None) -> None:
        self.path = path
        self.src = Text(text)
        self.buf = Buffer(text)
        self.options = options or Options()
        self.diagnostics: list[Diagnostic] = []
        self._seen: set[tuple[str, int, int, str]] = set()
        self.repaired_lines: set[int] = set()  # lines the lenient parser had to change
        self.untyped_ok: set[int] = set()  # lines whose bad `type` was reported already
        self.fork_fields: set[tuple[int, int]] = set()  # line:col of the --proto's own fields

    def repaired_within(self, first: int, last: int) -> bool:
        """Whether a parse error was repaired between these lines (its layer's settings
        are then incomplete, and findings about missing settings would only echo it)."""
        return any(first <= ln <= last for ln in self.repaired_lines)

    def report(
        self,
        code: str,
        message: str,
        line: int | None = None,
        col: int | None = None,
        *,
        help: str | None = None,
        fix: Fix | None = None,
        layer: str | None = None,
        phases: tuple[str, ...] = (),
        severity: str | None = None,
        repaired: bool = True,
    ) -> Diagnostic | None:
        """Record a finding at ``line:col`` (coordinates of the repaired text unless
        ``repaired`` is False; None: the top of the file)."""
        if line is None or col is None:
            line, col = 1, 1
        elif repaired:
            line, col = self.buf.orig(line, col)
        if not self.options.wants(code):
            return None
        key = (code, line, col, message)
        if key in self._seen:
            return None
        self._seen.add(key)
        d = Diagnostic(
            code=code,
            severity=severity or CODES[code].severity,
            message=message,
            path=self.path,
            line=line,
            col=col,
            help=help,
            fix=fix,
            layer=layer,
            phases=phases,
        )
        self.diagnostics.append(d)
        return d
