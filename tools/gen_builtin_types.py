#!/usr/bin/env python
"""Write caffe2torch/layers/builtin_types.py, the built-in layer types' entries without
their builders, from the layer registry.

    python tools/gen_builtin_types.py            # rewrite the file
    python tools/gen_builtin_types.py --check    # exit 1 if the file is stale

The file lets lint (layers/typeinfo.py) know every built-in type without importing the
layer modules, and so without torch. It lists the types registered by layers/catalog.py
(installed plug-ins are left out) in registration order, which "did you mean" follows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "caffe2torch" / "layers" / "builtin_types.py"

sys.path.insert(0, str(REPO))  # the checkout's package, whatever is installed

import caffe2torch.layers.catalog  # noqa: E402, F401  (registers the built-in types)
from caffe2torch.layers.registry import _REGISTRY  # noqa: E402
from caffe2torch.layers.typeinfo import Arity, info_of  # noqa: E402

HEADER = '''"""The built-in layer types, less their builders (see layers/typeinfo.py).

Written by tools/gen_builtin_types.py from the layer registry; do not edit: change the
register_layer call and run the tool.
"""

from caffe2torch.layers.typeinfo import Arity, TypeInfo

TYPES: tuple[TypeInfo, ...] = (
'''


def _arity(a: Arity) -> str:
    return f"Arity({a.low}, {a.high})"


def _call(args: list[str], width: int = 100) -> str:
    """``    TypeInfo(a, b, ...),`` wrapped at ``width`` (ruff's line length)."""
    out, line = [], "    TypeInfo("
    for i, arg in enumerate(args):
        piece = arg + ("," if i < len(args) - 1 else "),")
        if len(line) + len(piece) + 1 > width and not line.endswith("("):
            out.append(line.rstrip())
            line = " " * 13
        line += piece + " "
    out.append(line.rstrip())
    return "\n".join(out) + "\n"


def render() -> str:
    lines = [HEADER]
    for spec in _REGISTRY.values():
        t = info_of(spec)
        args = [repr(t.type), f"param={t.param!r}", f"bottoms={_arity(t.bottoms)}",
                f"tops={_arity(t.tops)}"]
        args += [f"blobs={t.blobs!r}"] if t.blobs else []
        args += [f"aliases={t.aliases!r}"] if t.aliases else []
        args += ["loss=True"] if t.loss else []
        args += ["data=True"] if t.data else []
        lines.append(_call(args))
    lines.append(")\n")
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the file is not what the registry gives")
    args = parser.parse_args(argv)
    current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
    fresh = render()
    name = OUT.relative_to(REPO)
    if args.check:
        if fresh != current:
            print(f"{name} is stale: run python tools/gen_builtin_types.py", file=sys.stderr)
            return 1
        print(f"{name} is up to date")
        return 0
    if fresh != current:
        OUT.write_text(fresh, encoding="utf-8")
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
