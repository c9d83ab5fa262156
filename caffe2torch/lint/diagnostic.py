"""What a lint rule reports: a :class:`Diagnostic` (code, severity, place, message, help)
and the text edits that fix it."""

from __future__ import annotations

from dataclasses import dataclass, field

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Edit:
    """Replace ``text[start:end]`` of the original file with ``new`` (offsets in characters
    of the decoded, newline-normalised text)."""

    start: int
    end: int
    new: str


@dataclass(frozen=True)
class Fix:
    """A safe rewrite that removes the finding; ``edits`` must not overlap each other."""

    description: str
    edits: tuple[Edit, ...]


@dataclass
class Diagnostic:
    """One finding. ``line``/``col`` are 1-based; ``help`` says what to write instead
    (at most three "did you mean" names, see :func:`caffe2torch.suggest.did_you_mean`)."""

    code: str
    severity: str
    message: str
    path: str | None = None
    line: int = 1
    col: int = 1
    help: str | None = None
    fix: Fix | None = None
    layer: str | None = None
    phases: tuple[str, ...] = field(default_factory=tuple)

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.path or "", self.line, self.col, self.code, self.message)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "help": self.help,
            "layer": self.layer,
            "phases": list(self.phases),
            "fix": None,
        }
        if self.fix is not None:
            out["fix"] = {
                "description": self.fix.description,
                "edits": [{"start": e.start, "end": e.end, "new": e.new} for e in self.fix.edits],
            }
        return out


