"""Arguments shared by the verbs that build a net from MODEL (export, convert, draw):
the weights, the NetState, input shapes, weight sharing and ``--allow-python-layers``
(also on train, test and time)."""

from __future__ import annotations

import argparse
from typing import Any

from caffe2torch.errors import UsageError

__all__ = ["UsageError"]  # re-exported: the verbs import it from here

SHARE_CHOICES = ("declared", "auto", "none")


def add_python_layers_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-python-layers", action="store_true",
                   help="build Python layers: imports and runs the module their python_param "
                   "names (trusted code only; put its folder on PYTHONPATH)")


def add_share_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--share", choices=SHARE_CHOICES, default="declared", type=str.lower,
                   help="weight sharing between layers: 'declared' (default, as Caffe: layers "
                   "that name the same param { name: ... } share it), 'auto' (also tie towers "
                   "built alike, such as conv1 / conv1_p, as one Siamese net), 'none' (untie "
                   "everything)")


def share_option(args: argparse.Namespace) -> str | None:
    """The ``share=`` value of load_net / build_net for ``--share``."""
    value = getattr(args, "share", "declared")
    return None if value == "none" else value
def add_image_cache_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image-cache-mb", type=_megabytes, metavar="MB",
                   help="ImageData keeps decoded images up to MB MiB per data layer and "
                   "process (default 256, or $CAFFE2TORCH_IMAGE_CACHE_MB; 0: decode every "
                   "image at every use, as Caffe). Crops and mirrors are still drawn for "
                   "every row; a file changed on disk during the run is not read again")


def _megabytes(raw: str) -> float:
    value = float(raw)  # argparse turns a ValueError into a usage error
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{raw!r} is not a size in MiB (a number >= 0)")
    return value


def apply_image_cache(args: argparse.Namespace) -> None:
    """Set the decoded-image budget that ``--image-cache-mb`` asks for (data.image_cache)."""
    if getattr(args, "image_cache_mb", None) is not None:
        from caffe2torch.data.image_cache import set_cache_megabytes

        set_cache_megabytes(args.image_cache_mb)


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
    add_netstate_args(p, "TEST")
    add_input_shape_arg(p)
    add_share_arg(p)
    add_proto_arg(p)


def add_netstate_args(p: argparse.ArgumentParser, phase: str | None) -> None:
    """--phase, --level, --stage: the NetState that picks the layers (include/exclude)."""
    default = f"default {phase}" if phase else "default: every phase the net declares"
    p.add_argument("--phase", type=str.upper, choices=["TRAIN", "TEST"], default=phase,
                   help=f"build the layers of this phase, as Caffe's NetState ({default})")
    p.add_argument("--level", type=int, default=0, metavar="N",
                   help="NetState level: layers with min_level/max_level rules (default 0)")
    p.add_argument("--stage", action="append", default=[], metavar="NAME",
                   help="NetState stage: layers with stage rules (repeatable)")


def add_input_shape_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-shape", action="append", default=[], metavar="BLOB=N,C,H,W",
                   help="shape of a data top the prototxt does not give, or of the tops of "
                   "any data layer to replace by an input (repeatable), e.g. "
                   "--input-shape data=1,3,224,224")


def input_shapes(values: list[str]) -> dict[str, list[int]] | None:
    """``BLOB=N,C,H,W`` flags -> {blob: dims}; a malformed value is a UsageError (exit 2):
    every dimension must be a positive integer, none may be left empty."""
    out: dict[str, list[int]] = {}
    for text in values:
        name, sep, dims = text.partition("=")
        name = name.strip()
        parts = [d.strip() for d in dims.split(",")] if sep else []
        bad = [d for d in parts if not (d.isdigit() and int(d) > 0)]
        if not name or not parts or bad:
            what = (f"{bad[0]!r} is not a positive integer" if bad and bad[0] else
                    "a dimension is empty" if bad else "expected BLOB=N,C,H,W")
            raise UsageError(f"--input-shape {text!r}: {what}",
                             hint="give positive integers separated by commas, e.g. "
                             "--input-shape data=1,3,224,224")
        if name in out:
            raise UsageError(f"--input-shape {text!r}: blob {name!r} is given twice")
        out[name] = [int(d) for d in parts]
    return out or None


def check_shape_names(shapes: dict[str, list[int]] | None, net_param: Any,
                      model: str) -> None:
    """Refuse --input-shape for a blob the net neither makes nor reads (it would be ignored).
    A blob the file only reads (a piece of a bigger net) is accepted: the build declares it
    as an input of that shape (ir.loose)."""
    from caffe2torch.ir.loose import read_before_made

    names = net_blob_names(net_param)
    loose = set(read_before_made(net_param))
    for name in shapes or {}:
        if name in names or name in loose:
            continue
        from caffe2torch.suggest import close_names, did_you_mean

        known = [*names, *sorted(loose)]
        raise UsageError(
            f"--input-shape {name}=...: the net has no blob named {name!r}", path=model,
            hint=(did_you_mean(close_names(name, known, cutoff=0.5), quote="") or
                  f"its blobs: {', '.join(known[:8])}{', ...' if len(known) > 8 else ''}"))


def net_blob_names(net_param: Any) -> list[str]:
    """Every blob the prototxt makes: its inputs and every layer's tops, any phase."""
    return list(dict.fromkeys(
        [*net_param.input, *(t for layer in net_param.layer for t in layer.top)]))


def load_model(args: argparse.Namespace) -> Any:
    """The net of MODEL for the flags' NetState, with --weights copied in."""
    from caffe2torch.graph import load_net
    from caffe2torch.io import read_net

    shapes = input_shapes(args.input_shape)
    proto = getattr(args, "proto", None)
    if shapes:  # refuse a name the net does not have before building (it would be ignored)
        check_shape_names(shapes, read_net(args.model, proto), args.model)
    return load_net(
        args.model,
        weights=getattr(args, "weights", None),
        phase=args.phase,
        level=args.level,
        stages=args.stage,
        input_shapes=shapes,
        share=share_option(args),
        proto=proto,
        **build_options(args),
    )
