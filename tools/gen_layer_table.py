#!/usr/bin/env python
"""Write the supported-layers table of docs/architecture.md from the layer registry.

    python tools/gen_layer_table.py            # rewrite the table between the markers
    python tools/gen_layer_table.py --check    # exit 1 if the table is stale

The table lists every built-in type (registered by a module of caffe2torch/layers/;
installed plug-ins are left out), sorted by name: the module whose builder the registry
uses, where the type comes from (BVLC Caffe or the fork caffe2torch/proto/forks.py names),
its options field, how many bottoms and tops it takes, its caffemodel blobs and the older
(V0/V1) names that mean it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "architecture.md"
BEGIN = "<!-- layer-table: begin (tools/gen_layer_table.py writes this part; do not edit) -->"
END = "<!-- layer-table: end -->"

sys.path.insert(0, str(REPO))  # the checkout's package, whatever is installed

from caffe2torch.layers.registry import Arity, find_layer_spec, registered_types  # noqa: E402
from caffe2torch.proto.forks import fork_of_layer_type  # noqa: E402

_PACKAGE = "caffe2torch.layers."


def _arity(a: Arity) -> str:
    if a.high is None:
        return f"{a.low}+"
    return str(a.low) if a.low == a.high else f"{a.low}-{a.high}"


def _origin(name: str, module: str, aliases: tuple[str, ...]) -> str:
    """The fork proto/forks.py names for the type; else BVLC for a type of layers/bvlc/ or
    one with a V1 enum name (a fork module may replace a BVLC builder); else a fork that
    proto/forks.py does not list yet."""
    fork = fork_of_layer_type(name)
    if fork:
        return fork
    if module.startswith("bvlc/") or aliases:
        return "BVLC"
    return "a fork (not in proto/forks.py)"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table() -> str:
    """The markdown table of the built-in layer types."""
    lines = [
        _row(["Type", "Module", "From", "Options", "Bottoms", "Tops", "Blobs", "Old names"]),
        _row(["---"] * 8),
    ]
    for name in registered_types():
        spec = find_layer_spec(name)
        if spec is None or not spec.builder.__module__.startswith(_PACKAGE):
            continue
        module = spec.builder.__module__[len(_PACKAGE):].replace(".", "/") + ".py"
        kind = " (loss)" if spec.loss else " (data)" if spec.data else ""
        lines.append(_row([
            f"`{name}`{kind}",
            f"layers/{module}",
            _origin(name, module, spec.aliases),
            f"`{spec.param}`" if spec.param else "",
            _arity(spec.bottoms),
            _arity(spec.tops),
            ", ".join(spec.blobs),
            ", ".join(f"`{a}`" for a in spec.aliases),
        ]))
    return "\n".join(lines)


def render(doc: str) -> str:
    """``doc`` with the text between the markers replaced by a fresh table."""
    start, end = doc.find(BEGIN), doc.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{DOC.relative_to(REPO)} lacks the markers {BEGIN!r} ... {END!r}")
    return doc[:start] + BEGIN + "\n\n" + table() + "\n\n" + doc[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the table in the doc is not what the registry gives")
    args = parser.parse_args(argv)
    current = DOC.read_text(encoding="utf-8")
    fresh = render(current)
    if args.check:
        if fresh != current:
            print(f"the layer table of {DOC.relative_to(REPO)} is stale: run "
                  "python tools/gen_layer_table.py", file=sys.stderr)
            return 1
        print(f"the layer table of {DOC.relative_to(REPO)} is up to date")
        return 0
    if fresh != current:
        DOC.write_text(fresh, encoding="utf-8")
        print(f"wrote the layer table of {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
