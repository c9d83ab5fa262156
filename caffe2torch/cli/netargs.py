"""Arguments shared by the verbs that build a net from MODEL (export, convert, draw):
the weights, the NetState, input shapes and ``--allow-python-layers`` (also on train,
test and time)."""

from __future__ import annotations

import argparse
from typing import Any

from caffe2torch.errors import CaffeError


class UsageError(CaffeError):
    """A flag value that cannot be used (exit code 2)."""


def add_python_layers_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-python-layers", action="store_true",
                   help="build Python layers: imports and runs the module their python_param "
                   "names (trusted code only; put its folder on PYTHONPATH)")


def add_proto_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--proto", metavar="PATH",
                   help="the caffe.proto of the Caffe fork the files were written for (its "
                   "src/caffe/proto/caffe.proto): read them with its fields and numbers")


def build_options(args: argparse.Namespace) -> dict[str, Any]:
    """The layer-builder options the flags ask for."""
    return {"allow_python_layers": True} if getattr(args, "allow_python_layers", False) else {}


def add_model_args(p: argparse.ArgumentParser, weights: bool = True) -> None:
    """MODEL and the NetState flags; ``weights``: also --weights and, as the verb builds
    the full net, --allow-python-layers."""
    p.add_argument("model", metavar="MODEL", help="net prototxt (any Caffe version)")
    if weights:
        p.add_argument("--weights", "-w", metavar="W",
                       help="caffemodel (V1/V2 binary or .h5); without it the fillers' values")
        add_python_layers_arg(p)
    p.add_argument("--phase", type=str.upper, choices=["TRAIN", "TEST"], default="TEST",
                   help="NetState phase (default TEST)")
    p.add_argument("--level", type=int, default=0, help="NetState level (default 0)")
    p.add_argument("--stage", action="append", default=[], help="NetState stage (repeatable)")
    p.add_argument("--input-shape", action="append", default=[], metavar="BLOB=N,C,H,W",
                   help="shape of a data top the prototxt does not give, or of the tops of "
                   "any data layer to replace by an input (repeatable)")
    add_proto_arg(p)


def input_shapes(values: list[str]) -> dict[str, list[int]] | None:
    out: dict[str, list[int]] = {}
    for text in values:
        name, sep, dims = text.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name] = [int(d) for d in dims.replace("x", ",").split(",") if d.strip()]
        except ValueError:
            raise UsageError(
                f"--input-shape {text!r}: expected BLOB=N,C,H,W", hint="e.g. data=1,3,224,224"
            ) from None
    return out or None


def load_model(args: argparse.Namespace) -> Any:
    """The net of MODEL for the flags' NetState, with --weights copied in."""
    from caffe2torch import load_net

    return load_net(
        args.model,
        weights=getattr(args, "weights", None),
        phase=args.phase,
        level=args.level,
        stages=args.stage,
        input_shapes=input_shapes(args.input_shape),
        proto=getattr(args, "proto", None),
        **build_options(args),
    )
