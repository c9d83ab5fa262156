"""Reading and writing Caffe files: text prototxt (lenient, with source positions), the
V0/V1 -> V2 upgrades, and (io.binary) caffemodel / binaryproto / solverstate."""

from caffe2torch.io.positions import LayerPos, SourceMap, scan
from caffe2torch.io.text import (
    net_to_text,
    read_net,
    read_net_text,
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

__all__ = [
    "LayerPos",
    "SourceMap",
    "UpgradeReport",
    "needs_upgrade",
    "net_to_text",
    "read_net",
    "read_net_text",
    "read_net_with_positions",
    "read_solver",
    "read_solver_text",
    "scan",
    "upgrade_net",
    "upgrade_net_report",
    "upgrade_solver",
    "upgrade_text",
]

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

__all__ += [
    "array_to_blob",
    "blob_shape",
    "blob_to_array",
    "is_legacy_4d",
    "read_binaryproto",
    "read_caffemodel",
    "read_caffemodel_arrays",
    "read_caffemodel_layers",
    "read_solverstate",
    "read_solverstate_arrays",
    "upgrade_caffemodel",
    "write_binaryproto",
    "write_caffemodel",
    "write_caffemodel_arrays",
    "write_solverstate",
]
