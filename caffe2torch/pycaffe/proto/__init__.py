"""caffe.proto: the schema's generated module, ``caffe.proto.caffe_pb2``."""

import sys

from caffe2torch.proto import caffe_pb2

sys.modules[__name__ + ".caffe_pb2"] = caffe_pb2

__all__ = ["caffe_pb2"]
