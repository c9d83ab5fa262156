"""Caffe's protobuf schema (proto/caffe.proto at the repository root), compiled by
tools/gen_proto.py. Import messages from here: ``from caffe2torch.proto import caffe_pb2``."""

from caffe2torch.proto import caffe_pb2

__all__ = ["caffe_pb2"]
