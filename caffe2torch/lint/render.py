"""Output formats: concise (one line each), full (source line, caret, help), json, sarif."""

from __future__ import annotations

from caffe2torch import __version__
from caffe2torch.lint.codes import CODES
from caffe2torch.lint.diagnostic import Diagnostic

FORMATS = ("concise", "full", "json", "sarif")


def _head(d: Diagnostic) -> str:
    return f"{d.path or '<text>'}:{d.line}:{d.col}: {d.severity}[{d.code}] {d.message}"


def concise(diags: list[Diagnostic], sources: dict[str | None, str]) -> str:
    return "".join(_head(d) + "\n" for d in diags)


def full(diags: list[Diagnostic], sources: dict[str | None, str]) -> str:
    out = []
    lines_of = {p: t.split("\n") for p, t in sources.items()}
    for d in diags:
        out.append(_head(d))
        lines = lines_of.get(d.path, [])
        if 1 <= d.line <= len(lines):
            src = lines[d.line - 1].expandtabs(1)
            gutter = str(d.line)
            pad = " " * len(gutter)
            out.append(f" {pad} |")
            out.append(f" {gutter} | {src}")
            out.append(f" {pad} | {' ' * (d.col - 1)}^")
        if d.help:
            out.append(f"  help: {d.help}")
        if d.fix is not None:
            out.append(f"  fix: {d.fix.description} (--fix)")
        out.append("")
    return "\n".join(out) + ("\n" if out else "")


def as_json(diags: list[Diagnostic], sources: dict[str | None, str]) -> str:
    import json  # the text formats (the default) do without it

    return json.dumps([d.to_dict() for d in diags], indent=2) + "\n"


_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def sarif(diags: list[Diagnostic], sources: dict[str | None, str]) -> str:
    used = sorted({d.code for d in diags})
    rules = [{
        "id": c,
        "name": CODES[c].name,
        "shortDescription": {"text": CODES[c].summary},
        "fullDescription": {"text": CODES[c].explain},
        "defaultConfiguration": {"level": _SARIF_LEVEL[CODES[c].severity]},
    } for c in used]
    results = []
    for d in diags:
        r: dict[str, object] = {
            "ruleId": d.code,
            "ruleIndex": used.index(d.code),
            "level": _SARIF_LEVEL[d.severity],
            "message": {"text": d.message + (f" (help: {d.help})" if d.help else "")},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": d.path or ""},
                "region": {"startLine": d.line, "startColumn": d.col},
            }}],
        }
        results.append(r)
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "caffe2torch lint", "version": __version__,
                                "rules": rules}},
            "results": results,
        }],
    }
    import json

    return json.dumps(doc, indent=2) + "\n"


RENDERERS = {"concise": concise, "full": full, "json": as_json, "sarif": sarif}


def render(fmt: str, diags: list[Diagnostic], sources: dict[str | None, str]) -> str:
    return RENDERERS[fmt](diags, sources)
