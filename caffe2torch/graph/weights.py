"""Weights in and out of a built net, by layer name, as Caffe does.

Loading follows Net::CopyTrainedLayersFrom (net.cpp): a source layer whose name is not in
the net is ignored (and listed); the first net layer of that name must have as many blobs
as the source layer; each blob's shape must be equal (Blob::ShapeEquals), where a blob
saved with the legacy num/channels/height/width also fits a net blob whose shape, padded
with leading 1s to four axes, equals it (an InnerProduct weight saved as 1x1xMxN). A fork
layer whose forks shape a blob differently (BN: (1, C, 1, 1) or (1, C)) accepts the other
forks' shape through its ``fits_saved``.

An HDF5 caffemodel (Net::ToHDF5) has no dataset for a blob the layer shares from another
layer (only owners are written, so a sharer's group may be empty): as in
CopyTrainedLayersFromHDF5 such a blob is left to its owner (the sharer holds the owner's
Parameter, so it takes the owner's values); a missing blob that the layer owns is an error.

Saving follows Net::ToProto: one layer message per layer (its settings, phase, and its
blobs with ``shape``), written by io.binary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from caffe2torch.errors import WeightsError
from caffe2torch.io import binary
from caffe2torch.proto import caffe_pb2


@dataclass
class SourceBlob:
    array: np.ndarray
    legacy: bool = False  # shape came from num/channels/height/width


@dataclass
class CopyReport:
    """What copy_from did: layers copied, file layers ignored, net layers left untouched."""

    copied: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    ignored_weights: list[str] = field(default_factory=list)  # ignored layers with blobs
    # data pointers of the param storages the copy wrote: their fillers need not run
    written: set[int] = field(default_factory=set, repr=False)

    def __str__(self) -> str:
        return (
            f"copied {len(self.copied)} layer(s); ignored (not in the net): "
            f"{', '.join(self.ignored) or 'none'}; missing from the file: "
            f"{', '.join(self.missing) or 'none'}"
        )

    def nothing_copied(self, source: str) -> str | None:
        """A warning when the net has learnable layers but no layer of ``source`` matched
        one by name: Caffe then copies nothing and says so only in its INFO lines
        ("Ignoring source layer ..."), so a run scores or fine-tunes the fillers' values.
        None when something was copied or the net has nothing to copy into."""
        if self.copied or not self.missing:
            return None
        theirs = _few(self.ignored_weights)
        return (f"no layer of {source} matches a layer of this net by name: nothing was "
                f"copied, the net keeps its fillers' values (the file's layers: "
                f"{theirs or 'none'}; the net's layers with weights: {_few(self.missing)}). "
                "Weights are copied by layer name, as in Caffe: rename the layers, or give "
                "the caffemodel trained with this net")


def _few(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def blob_array(blob: Any) -> SourceBlob:
    """A BlobProto's values in its Caffe shape, remembering a legacy 4-D shape."""
    return SourceBlob(binary.blob_to_array(blob), binary.is_legacy_4d(blob))


def _read_h5(path: str) -> list[tuple[str, list[SourceBlob | None]]]:
    """``data/<layer>/<i>``; None stands for a missing ``i`` below the largest present (a
    blob the writer left to its owner)."""
    import h5py

    out: list[tuple[str, list[SourceBlob | None]]] = []
    with h5py.File(path, "r") as f:
        if "data" not in f:
            raise WeightsError("not a Caffe HDF5 caffemodel: it has no 'data' group",
                               path=path)
        group = f["data"]
        for name in group:  # Caffe's HDF5 snapshots keep one group per layer
            layer = group[name]
            present = {int(k): layer[k] for k in layer if k.isdigit()}
            size = max(present) + 1 if present else 0
            blobs = [SourceBlob(np.asarray(present[i], dtype=np.float32)) if i in present
                     else None for i in range(size)]
            out.append((name, blobs))
    return out


def source_layers(
    source: Any, proto: Any = None
) -> list[tuple[str, list[SourceBlob | None]]]:
    """(layer name, blobs) in file order from a path, a NetParameter or {layer: [arrays]};
    a None blob is one an HDF5 file leaves to its owner."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if is_hdf5(path):
            return _read_h5(path)
        net, arrays = binary.read_caffemodel_layers(path, proto)
        return [
            (layer.name, [SourceBlob(a, binary.is_legacy_4d(b)) for a, b in zip(got, layer.blobs)])
            for layer, got in zip(net.layer, arrays)
        ]
    if isinstance(source, caffe_pb2.NetParameter) or hasattr(source, "layer"):
        layers = list(source.layer) or list(getattr(source, "layers", []))
        return [(ly.name, [blob_array(b) for b in ly.blobs]) for ly in layers]
    return [
        (name, [SourceBlob(np.asarray(a, dtype=np.float32)) for a in arrays])
        for name, arrays in dict(source).items()
    ]


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path: str) -> bool:
    """An HDF5 caffemodel, recognised by its name (.h5) or by its content (pycaffe's
    copy_from takes either kind whatever the file is called)."""
    if path.endswith(".h5"):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(8) == _HDF5_SIGNATURE
    except OSError:
        return False  # the reader says what is wrong with the path


def _fits(target: tuple[int, ...], blob: SourceBlob) -> bool:
    got = tuple(blob.array.shape)
    if got == target:
        return True
    if len(got) == 4 and len(target) <= 4:
        # Blob::ShapeEquals for legacy 4-D blobs: the target padded with leading 1s. Arrays
        # given without their BlobProto get the same allowance.
        return (1,) * (4 - len(target)) + target == got
    return False


def _fork_fits(module: Any, j: int, blob: SourceBlob) -> bool:
    """A fork layer whose forks disagree on a blob's shape (same values, other axes) says
    which saved shapes it takes through ``fits_saved(j, shape)``."""
    fits = getattr(module, "fits_saved", None)
    return bool(fits is not None and fits(j, tuple(int(d) for d in blob.array.shape)))


def copy_weights(net: Any, source: Any, proto: Any = None) -> CopyReport:
    try:
        return _copy_weights(net, source, proto)
    except WeightsError as err:
        if err.path is None and isinstance(source, (str, os.PathLike)):
            err.path = os.fspath(source)  # name the weights file the mismatch is in
        raise


def _copy_weights(net: Any, source: Any, proto: Any = None) -> CopyReport:
    report = CopyReport()
    layers = source_layers(source, proto)
    sparse = isinstance(source, (str, os.PathLike)) and is_hdf5(os.fspath(source))
    seen: set[str] = set()
    for name, blobs in layers:
        if name not in net.layer_attrs:
            report.ignored.append(name)
            if blobs:
                report.ignored_weights.append(name)
            continue
        module = net.module(name)
        if sparse and len(blobs) < len(module.blobs):
            blobs = [*blobs, *[None] * (len(module.blobs) - len(blobs))]
        if len(blobs) != len(module.blobs):
            raise WeightsError(
                f"layer '{name}': incompatible number of blobs: the weights have "
                f"{len(blobs)}, the net's layer has {len(module.blobs)}",
                hint="rename the layer in the prototxt to learn it from scratch",
            )
        position = net.layer_names.index(name)
        for j, blob in enumerate(blobs):
            if blob is None:
                if net.param_table.owner.get((position, j), (position, j)) == (position, j):
                    raise WeightsError(
                        f"layer '{name}': incompatible number of blobs: the weights have "
                        f"no blob {j}, which the net's layer owns (it shares it with no "
                        "other layer)",
                        hint="rename the layer in the prototxt to learn it from scratch")
                continue  # shared: the owner's values (CopyTrainedLayersFromHDF5)
            target = module.blobs[j]
            shape = tuple(int(d) for d in target.shape)
            if not _fits(shape, blob) and not _fork_fits(module, j, blob):
                raise WeightsError(
                    f"layer '{name}': cannot copy param {j}: shape mismatch: the weights have "
                    f"{' '.join(map(str, blob.array.shape))}, the net has "
                    f"{' '.join(map(str, shape))}",
                    hint="to learn this layer's parameters from scratch rather than copying "
                    "them, rename the layer",
                )
            with torch.no_grad():
                value = torch.from_numpy(np.ascontiguousarray(blob.array).reshape(shape))
                target.copy_(value.to(dtype=target.dtype, device=target.device))
            report.written.add(target.untyped_storage().data_ptr())
        if any(b is not None for b in blobs):
            report.copied.append(name)
        seen.add(name)
    report.missing = [n for n, p in net.params.items() if n not in seen]
    return report


# ---------------------------------------------------------------------------- writing


def save_caffemodel(net: Any, path: Any, proto: Any = None) -> None:
    phase = caffe_pb2.TRAIN if net.phase == "TRAIN" else caffe_pb2.TEST
    definition = caffe_pb2.NetParameter(name=net.ir.name)
    arrays = []
    for layer, module in zip(net.ir.layers, net._modules_in_order):
        msg = definition.layer.add()
        msg.CopyFrom(layer.proto)
        msg.ClearField("blobs")
        msg.phase = phase  # Net::Init sets each layer's phase; ToProto writes it
        arrays.append([b.detach().cpu().float().numpy() for b in module.blobs])
    binary.write_caffemodel_arrays(os.fspath(path), definition, arrays, proto=proto)
