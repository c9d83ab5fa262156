"""Caffe's data layers as batch sources: ImageData (list files + OpenCV), Data (LMDB /
LevelDB Datums), HDF5Data, with Caffe's transform_param and Caffe's row order."""

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
