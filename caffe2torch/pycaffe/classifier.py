"""caffe.Classifier: a TEST net with a Transformer that predicts class probabilities for
H x W x K images (resized to ``image_dims``, centre crop or ten crops averaged)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from caffe2torch.pycaffe import io as caffe_io
from caffe2torch.pycaffe.mode import TEST
from caffe2torch.pycaffe.net import Net


class Classifier(Net):
    def __init__(self, model_file: Any, pretrained_file: Any, image_dims: Any = None,
                 mean: np.ndarray | None = None, input_scale: float | None = None,
                 raw_scale: float | None = None, channel_swap: Sequence[int] | None = None
                 ) -> None:
        super().__init__(model_file, TEST, weights=pretrained_file)
        in_ = self.inputs[0]
        self.transformer = caffe_io.Transformer({in_: self.blobs[in_].data.shape})
        self.transformer.set_transpose(in_, (2, 0, 1))
        if mean is not None:
            self.transformer.set_mean(in_, mean)
        if input_scale is not None:
            self.transformer.set_input_scale(in_, input_scale)
        if raw_scale is not None:
            self.transformer.set_raw_scale(in_, raw_scale)
        if channel_swap is not None:
            self.transformer.set_channel_swap(in_, channel_swap)
        self.crop_dims = np.array(self.blobs[in_].data.shape[2:])
        self.image_dims = self.crop_dims if image_dims is None or not len(image_dims) \
            else np.asarray(image_dims)

    def predict(self, inputs: Sequence[np.ndarray], oversample: bool = True) -> np.ndarray:
        """(N x C) class probabilities for N images (ten crops averaged when
        ``oversample``, else the centre crop)."""
        images = np.zeros((len(inputs), int(self.image_dims[0]), int(self.image_dims[1]),
                           inputs[0].shape[2]), dtype=np.float32)
        for i, im in enumerate(inputs):
            images[i] = caffe_io.resize_image(im, self.image_dims)
        if oversample:
            images = caffe_io.oversample(images, self.crop_dims)
        else:
            center = np.array(self.image_dims) / 2.0
            box = np.concatenate([center - self.crop_dims / 2.0,
                                  center + self.crop_dims / 2.0]).astype(int)
            images = images[:, box[0]:box[2], box[1]:box[3], :]
        in_ = self.inputs[0]
        caffe_in = np.zeros((len(images), images.shape[3], *images.shape[1:3]),
                            dtype=np.float32)
        for i, im in enumerate(images):
            caffe_in[i] = self.transformer.preprocess(in_, im)
        predictions = self.forward_all(**{in_: caffe_in})[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape((len(predictions) // 10, 10, -1)).mean(1)
        return predictions
