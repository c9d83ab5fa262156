"""Caffe's data layers as indexable sources of rows: ``load(i)`` gives row ``i`` of every
top (no batch axis). Order, batching and workers are caffe2torch.data.feeder's job.

* ImageData (image_data_layer.cpp): a ``path label`` list, OpenCV decode and resize, then
  the transform;
* Data (data_layer.cpp): Datum records of an LMDB (or LevelDB) in key order, raw uint8 CHW,
  float_data, or encoded image bytes; with ``shuffle: true`` in data_param (a fork's field:
  intel/caffe's DataReader, lim0606/caffe's for GoogLeNet-BN; kept aside by the reader) in
  a new random order every epoch, the first included, as ImageData's shuffle (NVIDIA/caffe's
  field of that name shuffles only with its ``cache: true``, a field the build refuses;
  yjxiong/caffe's shuffles within a prefetch shard);
* ImageSegData (DeepLab-v2, PSPNet) and ImageLabelmapData (HED): image / label-map lists,
  in data.seg_sources and data.labelmap_source;
* HDF5Data (hdf5_data_layer.cpp): the files named in the source list (whitespace-separated,
  as ``source_file >> line`` reads them), one dataset per top, converted to float32, rows
  of the files one after another.

Relative paths are resolved against ``cwd``, as Caffe resolves them against its working
directory. Sources open files lazily so that they can be sent to DataLoader workers.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from caffe2torch.data import lmdb_envs
from caffe2torch.data.image_cache import DEFAULT_CACHE_BYTES, cache_budget
from caffe2torch.data.images import decode_image, read_image, to_chw, why_unreadable
from caffe2torch.data.labelmap_source import LabelmapSource
from caffe2torch.data.listfile import read_list_file
from caffe2torch.data.seg_sources import ImageSegSource
from caffe2torch.data.source_base import BadItemError, Source, _join
from caffe2torch.data.transform import Draws, Transformer
from caffe2torch.errors import DataError


class ImageListSource(Source):
    """An ImageData layer.

    Decoded (and resized) images are kept, up to ``cache_bytes`` per source and process
    (the first files that fit; files past the budget are decoded every time): a file listed
    again, in a later row or a later epoch, is not read again, and the pixels are the very
    ones OpenCV decoded; crops, mirrors, mean and scale are applied to every row after the
    cache. Caffe re-reads every file each epoch, so a file changed on disk during training
    is seen by Caffe and not here. The budget: ``$CAFFE2TORCH_IMAGE_CACHE_MB`` (MiB, 0:
    off) when set, else the class's ``cache_bytes`` (see caffe2torch.data.image_cache)."""

    type = "ImageData"
    cache_bytes = DEFAULT_CACHE_BYTES

    def __init__(self, layer: Any, phase: str, cwd: str) -> None:
        super().__init__(layer, phase, cwd)
        p = layer.image_data_param
        self._read_image_list_settings(p)
        self.entries = read_list_file(_join(cwd, p.source), shown_as=p.source)
        self.transform = Transformer(layer.transform_param, phase, cwd, f"layer '{self.layer}'")
        self.cache_bytes = cache_budget(type(self).cache_bytes)
        self._cache: dict[str, np.ndarray] = {}
        self._cache_left = self.cache_bytes

    def __len__(self) -> int:
        return len(self.entries)

    def describe(self, index: int) -> str:
        e = self.entries[index]
        return f"{self.source}:{e.line}"

    def _decoded(self, name: str) -> np.ndarray | None:
        """The decoded (and resized) image of the file ``name``: from the cache once read
        (pair and triplet lists name a file in many rows), until the cache's bytes run out
        (then the rest are decoded every time)."""
        img = self._cache.get(name)
        if img is None:
            img = read_image(_join(self.cwd, name), self.new_height, self.new_width,
                             self.is_color)
            if img is not None and img.nbytes <= self._cache_left:
                img.flags.writeable = False  # the transform copies; nothing may write here
                self._cache[name] = img
                self._cache_left -= img.nbytes
        return img

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()  # a worker process starts with an empty cache
        state.update(_cache={}, _cache_left=self.cache_bytes)
        return state

    def load(self, index: int, rng: Draws | None = None,
             out: list[np.ndarray] | None = None) -> list[np.ndarray]:
        e = self.entries[index]
        name = self.root + e.name  # plain concatenation, as Caffe does
        img = self._decoded(name)
        if img is None:
            message, hint = why_unreadable(name, _join(self.cwd, name))
            raise BadItemError(message, path=self.source, line=e.line, hint=hint)
        data = self.transform(to_chw(img), rng, f"{self.source}:{e.line}",
                              out=out[0] if out else None)
        return [data, np.float32(e.label)][: len(self.tops)]


class DatumSource(Source):
    """A Data layer over an LMDB or a LevelDB."""

    type = "Data"
    _handles = ("_env", "_txn", "_db")

    def __init__(self, layer: Any, phase: str, cwd: str) -> None:
        super().__init__(layer, phase, cwd)
        from caffe2torch.proto import caffe_pb2

        p = layer.data_param
        self._check_batch(p.batch_size)
        self.source = p.source
        self.path = _join(cwd, p.source)
        self.backend = "LMDB" if p.backend == caffe_pb2.DataParameter.LMDB else "LEVELDB"
        self.transform = Transformer(layer.transform_param, phase, cwd, f"layer '{self.layer}'")
        self.force_color = self.transform.force_color or bool(p.force_encoded_color)
        self.force_gray = self.transform.force_gray
        self._env: Any = None
        self._txn: Any = None
        self._db: Any = None
        self._pid = os.getpid()
        if not os.path.isdir(self.path):
            raise DataError(f"layer '{self.layer}': the {self.backend} database is not "
                            "there", path=self.source, hint="paths are relative to the "
                            "working directory Caffe runs in")
        has_mdb = os.path.exists(os.path.join(self.path, "data.mdb"))
        if self.backend == "LEVELDB" and has_mdb:
            raise DataError(f"layer '{self.layer}': the source is an LMDB but the layer "
                            "reads a LevelDB (backend defaults to LEVELDB)",
                            path=self.source, hint="add 'backend: LMDB' to data_param")
        self.keys = self._read_keys()
        if not self.keys:
            raise DataError(f"layer '{self.layer}': the database has no records",
                            path=self.source)

    def take_extras(self, extras: Mapping[str, Any]) -> None:
        super().take_extras(extras)
        # data_param.shuffle (intel/caffe's, and lim0606/caffe's for GoogLeNet-BN): every
        # record in a new random order each epoch, the first one included (the
        # DataReader's DBShuffle), the order ImageData's shuffle gives its list
        self.shuffle = bool(extras.get("data_param.shuffle", False))

    # -- database access

    def _open(self) -> None:
        self._pid = os.getpid()
        if self.backend == "LMDB":
            try:
                import lmdb
            except ImportError:
                raise DataError(f"layer '{self.layer}': reading an LMDB needs the 'lmdb' "
                                "package", path=self.source,
                                hint="pip install lmdb (or caffe2torch[lmdb])") from None
            try:
                # shared with every other reader of this database in the process, as
                # Caffe opens one LMDB in several layers and solvers
                self._env = lmdb_envs.acquire(self.path)
            except (lmdb.Error, OSError) as e:
                raise DataError(f"layer '{self.layer}': cannot open the LMDB: {e}",
                                path=self.source) from None
            self._txn = self._env.begin(buffers=False)
            return
        try:
            import plyvel
        except ImportError:
            raise DataError(
                f"layer '{self.layer}': reading a LevelDB needs the 'plyvel' package",
                path=self.source,
                hint="pip install plyvel, or convert the database to LMDB (e.g. rebuild it "
                     "with convert_imageset -backend lmdb) and set 'backend: LMDB'") from None
        try:
            self._db = plyvel.DB(self.path, create_if_missing=False)
        except Exception as e:  # plyvel raises its own error types
            raise DataError(f"layer '{self.layer}': cannot open the LevelDB: {e}",
                            path=self.source) from None

    def _read_keys(self) -> list[bytes]:
        self._open()
        if self.backend == "LMDB":
            with self._txn.cursor() as cur:
                return [bytes(k) for k in cur.iternext(keys=True, values=False)]
        return [bytes(k) for k, _ in self._db.iterator()]

    def _get(self, key: bytes) -> bytes:
        if self._pid != os.getpid():
            # a forked DataLoader worker must not use its parent's LMDB/LevelDB handles
            self._env = self._txn = self._db = None
        if self._txn is None and self._db is None:
            self._open()
        value = self._txn.get(key) if self.backend == "LMDB" else self._db.get(key)
        if value is None:
            raise DataError(f"layer '{self.layer}': record {key!r} vanished from the "
                            "database", path=self.source)
        return bytes(value)

    def close(self) -> None:
        if self._txn is not None:
            self._txn.abort()
        if self._env is not None:
            lmdb_envs.release(self._env)
        if self._db is not None:
            self._db.close()
        self._env = self._txn = self._db = None

    # -- rows

    def __len__(self) -> int:
        return len(self.keys)

    def describe(self, index: int) -> str:
        return f"{self.source}[{self.keys[index].decode('utf-8', 'replace')}]"

    def datum_image(self, index: int) -> tuple[np.ndarray, int]:
        """Record ``index`` as a C x H x W array (uint8, or float32 from float_data)."""
        from caffe2torch.proto import caffe_pb2

        key = self.keys[index]
        datum = caffe_pb2.Datum()
        try:
            datum.ParseFromString(self._get(key))
        except Exception:
            raise BadItemError(f"record {key!r} is not a Datum", path=self.source) from None
        if datum.encoded:
            img = decode_image(datum.data, self.force_color, self.force_gray)
            if img is None:
                raise BadItemError(f"could not decode the image of record {key!r}",
                                   path=self.source)
            if img.dtype != np.uint8:
                raise BadItemError(f"record {key!r}: image data type must be unsigned byte, "
                                   f"got {img.dtype}", path=self.source)
            return to_chw(img), int(datum.label)
        shape = (int(datum.channels), int(datum.height), int(datum.width))
        if datum.data:
            arr: np.ndarray = np.frombuffer(datum.data, dtype=np.uint8)
        else:
            arr = np.asarray(datum.float_data, dtype=np.float32)
        if arr.size != shape[0] * shape[1] * shape[2] or shape[0] <= 0:
            raise BadItemError(f"record {key!r}: {arr.size} values do not fill "
                               f"{'x'.join(map(str, shape))}", path=self.source)
        return arr.reshape(shape), int(datum.label)

    def load(self, index: int, rng: Draws | None = None,
             out: list[np.ndarray] | None = None) -> list[np.ndarray]:
        chw, label = self.datum_image(index)
        data = self.transform(chw, rng, self.describe(index), out=out[0] if out else None)
        return [data, np.float32(label)][: len(self.tops)]


class HDF5Source(Source):
    """An HDF5Data layer."""

    type = "HDF5Data"
    _handles = ("_cache",)

    def __init__(self, layer: Any, phase: str, cwd: str) -> None:
        super().__init__(layer, phase, cwd)
        p = layer.hdf5_data_param
        self._check_batch(p.batch_size)
        if layer.HasField("transform_param"):
            raise DataError(f"layer '{self.layer}': HDF5Data does not transform data",
                            hint="remove transform_param; preprocess the arrays in the files")
        if not self.tops:
            raise DataError(f"layer '{self.layer}': HDF5Data needs at least one top")
        self.source = p.source
        self.shuffle = bool(p.shuffle)
        listing = _join(cwd, p.source)
        try:
            with open(listing) as f:
                self.files = f.read().split()
        except OSError:
            raise DataError("cannot open the HDF5 source list", path=p.source,
                            hint="paths are relative to the working directory") from None
        if not self.files:
            raise DataError("the HDF5 source list names no file", path=p.source)
        self.lengths: list[int] = []
        self.row_shapes: list[tuple[int, ...]] | None = None
        for name in self.files:
            self.lengths.append(self._inspect(name))
        self.starts = list(np.cumsum([0, *self.lengths[:-1]]))
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def _h5(self, name: str) -> Any:
        try:
            import h5py
        except ImportError:
            raise DataError(f"layer '{self.layer}': reading HDF5 needs the 'h5py' package",
                            path=name, hint="pip install h5py (or caffe2torch[hdf5])") from None

        try:
            return h5py.File(_join(self.cwd, name), "r")
        except OSError as e:
            raise DataError(f"failed opening HDF5 file {name!r}: {e}", path=self.source
                            ) from None

    def _inspect(self, name: str) -> int:
        with self._h5(name) as f:
            shapes = []
            for top in self.tops:
                if top not in f or not hasattr(f[top], "shape"):
                    raise DataError(f"HDF5 file {name!r} has no dataset {top!r}",
                                    path=self.source, hint="HDF5Data reads one dataset per "
                                    "top, named like the top")
                shape = tuple(int(d) for d in f[top].shape)
                if len(shape) < 1:
                    raise DataError(f"dataset {top!r} of {name!r} has no axis",
                                    path=self.source)
                shapes.append(shape)
        num = shapes[0][0]
        for top, shape in zip(self.tops, shapes):
            if shape[0] != num:
                raise DataError(f"in {name!r}, dataset {top!r} has {shape[0]} rows but "
                                f"{self.tops[0]!r} has {num}", path=self.source)
        rows = [s[1:] for s in shapes]
        if self.row_shapes is None:
            self.row_shapes = rows
        elif rows != self.row_shapes:
            raise DataError(f"the datasets of {name!r} have row shapes {rows}, the first "
                            f"file's have {self.row_shapes}", path=self.source)
        if num == 0:
            raise DataError(f"HDF5 file {name!r} has no rows", path=self.source)
        return num

    def __len__(self) -> int:
        return int(sum(self.lengths))

    def segments(self) -> list[int]:
        return list(self.lengths)

    def describe(self, index: int) -> str:
        k = bisect.bisect_right(self.starts, index) - 1
        return f"{self.files[k]}[{index - self.starts[k]}]"

    def _arrays(self, k: int) -> list[np.ndarray]:
        if self._cache is None or self._cache[0] != k:
            with self._h5(self.files[k]) as f:
                arrays = [np.asarray(f[top][()], dtype=np.float32) for top in self.tops]
            self._cache = (k, arrays)
        return self._cache[1]

    def load(self, index: int, rng: Draws | None = None,
             out: list[np.ndarray] | None = None) -> list[np.ndarray]:
        k = bisect.bisect_right(self.starts, index) - 1
        row = index - int(self.starts[k])
        return [a[row] for a in self._arrays(k)]

    def close(self) -> None:
        self._cache = None


SOURCE_TYPES: dict[str, type[Source]] = {
    "ImageData": ImageListSource,
    "Data": DatumSource,
    "HDF5Data": HDF5Source,
    "ImageSegData": ImageSegSource,  # DeepLab-v2, hszhao/PSPNet
    "IMAGE_SEG_DATA": ImageSegSource,  # the same in a V1 net (DeepLab's enum value)
    "ImageLabelmapData": LabelmapSource,  # s9xie/hed
}


def make_source(layer: Any, phase: str, cwd: str = ".",
                extras: Mapping[str, Any] | None = None) -> Source:
    """The source for one data-layer LayerParameter (V2 type names). ``extras``: the fork
    fields the reader kept for the layer, by dotted path (see :meth:`Source.take_extras`)."""
    kind = SOURCE_TYPES.get(layer.type)
    if kind is None:
        raise DataError(f"layer '{layer.name}' of type {layer.type!r} is not a data layer "
                        f"this reader feeds", hint=f"supported: {', '.join(SOURCE_TYPES)}")
    source = kind(layer, phase, cwd)
    source.take_extras(extras or {})
    return source


__all__ = ["SOURCE_TYPES", "BadItemError", "DatumSource", "HDF5Source", "ImageListSource",
           "Source", "make_source"]
