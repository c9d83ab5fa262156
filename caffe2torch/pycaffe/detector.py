"""caffe.Detector: windowed detection (R-CNN style): crops windows of images, with an
optional context border filled by the mean, warps them to the net's input and
classifies them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from caffe2torch.pycaffe import io as caffe_io
from caffe2torch.pycaffe.mode import TEST
from caffe2torch.pycaffe.net import Net


class Detector(Net):
    def __init__(self, model_file: Any, pretrained_file: Any, mean: np.ndarray | None = None,
                 input_scale: float | None = None, raw_scale: float | None = None,
                 channel_swap: Sequence[int] | None = None, context_pad: int | None = None
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
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows: Iterable[tuple[str, Sequence[Any]]]
                       ) -> list[dict[str, Any]]:
        """[{window, prediction, filename}] for (image file, [ymin, xmin, ymax, xmax]...)."""
        images_windows = list(images_windows)
        crops: list[np.ndarray] = []
        for fname, windows in images_windows:
            image = caffe_io.load_image(fname).astype(np.float32)
            crops.extend(self.crop(image, w) for w in windows)
        in_ = self.inputs[0]
        caffe_in = np.zeros((len(crops), crops[0].shape[2], *self.blobs[in_].data.shape[2:]),
                            dtype=np.float32)
        for i, c in enumerate(crops):
            caffe_in[i] = self.transformer.preprocess(in_, c)
        predictions = self.forward_all(**{in_: caffe_in})[self.outputs[0]]
        out, i = [], 0
        for fname, windows in images_windows:
            for w in windows:
                out.append({"window": w, "prediction": predictions[i], "filename": fname})
                i += 1
        return out

    def detect_selective_search(self, image_fnames: Sequence[str]) -> list[dict[str, Any]]:
        """detect_windows over selective-search proposals (needs the
        ``selective_search_ijcv_with_python`` package, as pycaffe)."""
        try:
            import selective_search_ijcv_with_python as selective_search
        except ImportError as exc:
            raise ImportError("detect_selective_search needs the "
                              "selective_search_ijcv_with_python package") from exc
        fnames = [str(f) for f in image_fnames]
        windows = selective_search.get_windows(fnames, cmd="selective_search_rcnn")
        return self.detect_windows(zip(fnames, windows))

    def crop(self, im: np.ndarray, window: Sequence[int] | np.ndarray) -> np.ndarray:
        """The window (ymin, xmin, ymax, xmax) of ``im``, with ``context_pad`` pixels of
        context warped around it (mean-filled where the context leaves the image)."""
        window = np.asarray(window)
        crop = im[window[0]:window[2], window[1]:window[3]]
        if not self.context_pad:
            return crop
        size = self.blobs[self.inputs[0]].width  # square inputs
        scale = size / (1.0 * size - self.context_pad * 2)
        half_h = (window[2] - window[0] + 1) / 2.0
        half_w = (window[3] - window[1] + 1) / 2.0
        center = (window[0] + half_h, window[1] + half_w)
        box = np.round(np.tile(center, 2) + scale * np.array((-half_h, -half_w, half_h,
                                                               half_w)))
        scale_h = size / (box[2] - box[0] + 1)
        scale_w = size / (box[3] - box[1] + 1)
        pad_y = round(max(0, -box[0]) * scale_h)
        pad_x = round(max(0, -box[1]) * scale_w)
        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0.0, [im_h, im_w, im_h, im_w])
        clip_h, clip_w = box[2] - box[0] + 1, box[3] - box[1] + 1
        assert clip_h > 0 and clip_w > 0
        crop_h = min(round(clip_h * scale_h), size - pad_y)
        crop_w = min(round(clip_w * scale_w), size - pad_x)
        b = box.astype(int)
        context = caffe_io.resize_image(im[b[0]:b[2], b[1]:b[3]], (crop_h, crop_w))
        out = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        out[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = context
        return out

    def configure_crop(self, context_pad: int | None) -> None:
        """Crop size from the net's input, and the mean (in image space) that fills
        context beyond the image."""
        in_ = self.inputs[0]
        tpose = self.transformer.transpose[in_]
        inv = [tpose[t] for t in tpose]
        self.crop_dims = np.array(self.blobs[in_].data.shape[1:])[inv]
        self.context_pad = context_pad
        if not context_pad:
            return
        mean = self.transformer.mean.get(in_)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
            return
        crop_mean = mean.copy().transpose(inv)
        order = self.transformer.channel_swap.get(in_)
        if order is not None:
            crop_mean = crop_mean[:, :, [list(order).index(i)
                                         for i in range(crop_mean.shape[2])]]
        raw = self.transformer.raw_scale.get(in_)
        if raw is not None:
            crop_mean = crop_mean / raw
        self.crop_mean = crop_mean
