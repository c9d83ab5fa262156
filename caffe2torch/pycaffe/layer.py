"""caffe.Layer: the base class of Python layers (python_layer.hpp).

A subclass defines ``setup(bottom, top)``, ``reshape(bottom, top)``, ``forward(bottom,
top)`` and ``backward(top, propagate_down, bottom)`` on lists of blobs; the net sets
``param_str`` (also as ``param_str_``, its name in caffe-fast-rcnn, the 2015 BVLC Caffe
that py-faster-rcnn builds) and ``phase`` (equal to ``caffe.TRAIN`` / ``caffe.TEST``; its
``str`` is "TRAIN" / "TEST", as that version's Boost.Python enum) before ``setup``.
``self.blobs.add_blob(*shape)`` gives the layer learnable parameters: they are the layer's
param blobs in the net, saved by ``net.save``, loaded by ``copy_from``, shared by
``share_with`` and updated by the solver.
"""

from __future__ import annotations

from typing import Any

from caffe2torch.pycaffe.blob import BlobVec


class Layer:
    param_str: str = ""
    param_str_: str = ""
    type: str = "Python"  # PythonLayer::type(), as net.layers[i].type shows it
    phase: int = 0

    @property
    def blobs(self) -> BlobVec:
        vec = self.__dict__.get("_blobvec")
        if vec is None:
            vec = self.__dict__["_blobvec"] = BlobVec()
        return vec

    def setup(self, bottom: list[Any], top: list[Any]) -> None:
        pass

    def reshape(self, bottom: list[Any], top: list[Any]) -> None:
        pass

    def forward(self, bottom: list[Any], top: list[Any]) -> None:
        pass

    def backward(self, top: list[Any], propagate_down: list[bool], bottom: list[Any]) -> None:
        pass
