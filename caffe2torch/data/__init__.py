"""Caffe's data layers as batch sources: ImageData (list files + OpenCV), Data (LMDB /
LevelDB Datums), HDF5Data, with Caffe's transform_param and Caffe's row order.

The names below load on first use, so that the torch-free module ``data.listfile`` (which
``lint --check-data`` reads list files with) can be imported without torch and OpenCV.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from caffe2torch.lazy import lazy_names

if TYPE_CHECKING:
    from caffe2torch.data.feeder import DataFeeder
    from caffe2torch.data.listfile import ListEntry, atoi, parse_list_text, read_list_file
    from caffe2torch.data.order import IndexStream
    from caffe2torch.data.sources import (
        BadItemError,
        DatumSource,
        HDF5Source,
        ImageListSource,
        Source,
        make_source,
    )
    from caffe2torch.data.transform import Transformer

_PUBLIC = {
    "BadItemError": "caffe2torch.data.sources",
    "DataFeeder": "caffe2torch.data.feeder",
    "DatumSource": "caffe2torch.data.sources",
    "HDF5Source": "caffe2torch.data.sources",
    "ImageListSource": "caffe2torch.data.sources",
    "IndexStream": "caffe2torch.data.order",
    "ListEntry": "caffe2torch.data.listfile",
    "Source": "caffe2torch.data.sources",
    "Transformer": "caffe2torch.data.transform",
    "atoi": "caffe2torch.data.listfile",
    "make_source": "caffe2torch.data.sources",
    "parse_list_text": "caffe2torch.data.listfile",
    "read_list_file": "caffe2torch.data.listfile",
}


__getattr__ = lazy_names(__name__, _PUBLIC, globals())


__all__ = [
    "BadItemError",
    "DataFeeder",
    "DatumSource",
    "HDF5Source",
    "ImageListSource",
    "IndexStream",
    "ListEntry",
    "Source",
    "Transformer",
    "atoi",
    "make_source",
    "parse_list_text",
    "read_list_file",
]
