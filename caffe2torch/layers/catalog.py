"""Imports every module that registers built-in Caffe layer types."""

from caffe2torch.layers import (  # noqa: F401  (imported for their registrations)
    blob_ops,
    forks_detection,
    forks_face,
    forks_local,
    forks_losses,
    forks_mobile,
    forks_normface,
    forks_segmentation,
    forks_ssd,
    forks_ssd_data,
    forks_ssd_eval,
    inputs,
    losses,
    metric_losses,
    neuron,
    normalization,
    recurrent,
    vision,
)
