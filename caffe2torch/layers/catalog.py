"""Imports every module that registers built-in Caffe layer types."""

from caffe2torch.layers import (  # noqa: F401  (imported for their registrations)
    blob_ops,
    inputs,
    losses,
    neuron,
    normalization,
    recurrent,
    vision,
)
