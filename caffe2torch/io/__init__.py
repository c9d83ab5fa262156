"""Reading and writing Caffe files: text prototxt (lenient, with source positions), the
V0/V1 -> V2 upgrades, and (io.binary) caffemodel / binaryproto / solverstate."""

from __future__ import annotations

from typing import TYPE_CHECKING

from caffe2torch.lazy import lazy_names

if TYPE_CHECKING:
    from caffe2torch.io.binary import (
        array_to_blob,
        blob_shape,
        blob_to_array,
        is_legacy_4d,
        read_binaryproto,
        read_caffemodel,
        read_caffemodel_arrays,
        read_caffemodel_layers,
        read_solverstate,
        read_solverstate_arrays,
        upgrade_caffemodel,
        write_binaryproto,
        write_caffemodel,
        write_caffemodel_arrays,
        write_solverstate,
    )
    from caffe2torch.io.positions import LayerPos, SourceMap, scan
    from caffe2torch.io.text import (
        net_to_text,
        read_net,
        read_net_text,
        read_net_text_with_positions,
        read_net_with_positions,
        read_solver,
        read_solver_text,
        upgrade_text,
    )
    from caffe2torch.io.upgrade import (
        UpgradeReport,
        needs_upgrade,
        upgrade_net,
        upgrade_net_report,
        upgrade_solver,
    )

# public name -> the module that defines it (loaded on first use: reading text needs
# neither numpy nor the binary readers)
_PUBLIC: dict[str, str] = {
    "LayerPos": "caffe2torch.io.positions",
    "SourceMap": "caffe2torch.io.positions",
    "UpgradeReport": "caffe2torch.io.upgrade",
    "array_to_blob": "caffe2torch.io.binary",
    "blob_shape": "caffe2torch.io.binary",
    "blob_to_array": "caffe2torch.io.binary",
    "is_legacy_4d": "caffe2torch.io.binary",
    "needs_upgrade": "caffe2torch.io.upgrade",
    "net_to_text": "caffe2torch.io.text",
    "read_binaryproto": "caffe2torch.io.binary",
    "read_caffemodel": "caffe2torch.io.binary",
    "read_caffemodel_arrays": "caffe2torch.io.binary",
    "read_caffemodel_layers": "caffe2torch.io.binary",
    "read_net": "caffe2torch.io.text",
    "read_net_text": "caffe2torch.io.text",
    "read_net_text_with_positions": "caffe2torch.io.text",
    "read_net_with_positions": "caffe2torch.io.text",
    "read_solver": "caffe2torch.io.text",
    "read_solver_text": "caffe2torch.io.text",
    "read_solverstate": "caffe2torch.io.binary",
    "read_solverstate_arrays": "caffe2torch.io.binary",
    "scan": "caffe2torch.io.positions",
    "upgrade_caffemodel": "caffe2torch.io.binary",
    "upgrade_net": "caffe2torch.io.upgrade",
    "upgrade_net_report": "caffe2torch.io.upgrade",
    "upgrade_solver": "caffe2torch.io.upgrade",
    "upgrade_text": "caffe2torch.io.text",
    "write_binaryproto": "caffe2torch.io.binary",
    "write_caffemodel": "caffe2torch.io.binary",
    "write_caffemodel_arrays": "caffe2torch.io.binary",
    "write_solverstate": "caffe2torch.io.binary",
}


__getattr__ = lazy_names(__name__, _PUBLIC, globals())

__all__ = [
    "LayerPos",
    "SourceMap",
    "UpgradeReport",
    "array_to_blob",
    "blob_shape",
    "blob_to_array",
    "is_legacy_4d",
    "needs_upgrade",
    "net_to_text",
    "read_binaryproto",
    "read_caffemodel",
    "read_caffemodel_arrays",
    "read_caffemodel_layers",
    "read_net",
    "read_net_text",
    "read_net_text_with_positions",
    "read_net_with_positions",
    "read_solver",
    "read_solver_text",
    "read_solverstate",
    "read_solverstate_arrays",
    "scan",
    "upgrade_caffemodel",
    "upgrade_net",
    "upgrade_net_report",
    "upgrade_solver",
    "upgrade_text",
    "write_binaryproto",
    "write_caffemodel",
    "write_caffemodel_arrays",
    "write_solverstate",
]
