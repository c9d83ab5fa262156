"""build_fed_net: a NetParameter -> a CaffeNet on a device that draws its own batches, as
the nets of Caffe's Solver and ``caffe test``/``caffe time`` do (runtime.feeding), with a
writer on each HDF5Output layer (runtime.hdf5_output)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from caffe2torch.errors import CaffeError, DataError
from caffe2torch.graph.builder import build_net
from caffe2torch.graph.net import CaffeNet
from caffe2torch.io.paths import folder_where_found, shown, where_text
from caffe2torch.ir.netstate import NetState
from caffe2torch.runtime.feeding import BatchStream, open_feeder
from caffe2torch.runtime.hdf5_output import attach_hdf5_outputs


def build_fed_net(
    net_param: Any,
    state: NetState,
    *,
    cwd: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    share_with: CaffeNet | None = None,
    source_map: Any = None,
    device: torch.device | str = "cpu",
    input_shapes: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int | None = None,
    share: Any = "declared",
) -> CaffeNet:
    """Build ``net_param`` for ``state`` with a BatchStream as ``net.feeder`` (also kept as
    ``net.batch_stream``), moved to ``device``. ``rank`` / ``world_size`` / ``num_workers``:
    see :func:`~caffe2torch.runtime.feeding.open_feeder`. ``share``: build_net's weight
    sharing ("declared", "auto", None or {layer: owner})."""
    device = torch.device(device)
    folder = os.fspath(cwd) if cwd is not None else os.getcwd()
    try:
        feeder, first = open_feeder(net_param, state, device=device, cwd=folder, seed=seed,
                                    rank=rank, world_size=world_size, num_workers=num_workers,
                                    source_map=source_map)
    except DataError as e:
        unread = _unread_data_field(net_param, state, source_map)
        if unread is not None:  # the likelier cause: see _unread_data_field
            raise unread from None
        _say_where_found(e, folder, getattr(source_map, "path", None))
        raise
    shapes = {k: tuple(v.shape) for k, v in (first or {}).items()}
    shapes.update({k: tuple(v) for k, v in (input_shapes or {}).items()})
    net = build_net(net_param, state, share_with=share_with, input_shapes=shapes or None,
                    source_map=source_map, options=options, share=share)
    net.to(device)
    stream = BatchStream(net, feeder, first, device)
    net.feeder = stream
    net.batch_stream = stream
    net.hdf5_outputs = attach_hdf5_outputs(net, folder)
    return net


def _unread_data_field(net_param: Any, state: NetState, source_map: Any) -> CaffeError | None:
    """The build's refusal (C2T605) of a data layer of ``state`` whose kept fork field its
    builder does not read, or None. The data are opened before the net is built (their
    first batch gives the shapes), so a data error there is checked against it: a fork's
    resizing left unread (caffe-pro's ``image_data_param.new_dim``) shows first as a mean
    file that does not fit the image, when the cause is the field."""
    from caffe2torch.layers.registry import BuildContext, build_layer
    from caffe2torch.runtime.feeding import data_layers

    extras_of = getattr(source_map, "extras_of", None)
    if extras_of is None or not getattr(source_map, "extras", None):
        return None
    fed = {id(layer) for layer in data_layers(net_param, state)}
    for i, layer in enumerate(net_param.layer):
        if id(layer) not in fed:
            continue
        try:
            extra = extras_of(i)
        except IndexError:  # a map of another net
            return None
        if not extra:
            continue
        ctx = BuildContext(layer=layer, bottom_shapes=[], num_tops=len(layer.top),
                           phase=state.phase, extra=extra)
        try:
            build_layer(ctx)
        except CaffeError as err:
            if err.code == "C2T605":
                err.path = err.path or getattr(source_map, "path", None)
                return err
        except Exception:  # any other failure: the data error stands
            continue
    return None


def _say_where_found(err: DataError, cwd: str, net_path: str | None) -> None:
    """A data file (list, mean) not found from the working directory, where Caffe opens
    it, but found from the net's folder or one above: say so in the hint."""
    name = err.path
    if not name or not net_path or os.path.exists(os.path.join(cwd, name)):
        return
    found = folder_where_found(name, net_path)
    if found is None or os.path.samefile(found, cwd):
        return
    err.hint = (f"'{name}' exists {where_text(found, net_path, 'net')}: run from that folder "
                f"(cd {shown(found)}) or write the path relative to where you run")


def stream_of(net: CaffeNet) -> BatchStream:
    """The BatchStream of a net made by :func:`build_fed_net`."""
    if net.batch_stream is None:
        raise CaffeError(f"net {net.name!r} does not draw its own batches",
                         hint="build it with caffe2torch.graph.fed.build_fed_net")
    return net.batch_stream


__all__ = ["build_fed_net", "stream_of"]
