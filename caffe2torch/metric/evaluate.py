"""Evaluating a trained metric net on images named in Caffe list files.

Images are embedded as training saw them. The preprocessing comes from the net's own image
data layer of the evaluated phase (the first data layer, or the one whose top is
``input_blob``):

* ImageData: ``root_folder`` + the listed name, relative to the working directory (as
  Caffe), decoded colour or grey per ``is_color``, resized by ``new_height``/``new_width``,
  then its ``transform_param``;
* Data (LMDB/LevelDB): its ``transform_param``; grey when the built net's input has one
  channel (``load_metric_net`` shapes that input from the first listed image, read in
  colour unless ``force_gray`` is set);
* Input (a deploy net): no transform; colour or grey after the input's channel count
  (``load_metric_net(..., preprocess_from=train_test.prototxt)`` takes the transform and
  image settings from the training net's data layer instead).

For Data and Input layers without ``crop_size``, an image whose size differs from the
input's declared H x W is resized to it (bilinear, as Caffe's resize). The transform runs in
TEST mode whatever the phase, without ``mirror``: crops are centred and nothing is random,
so the same image always gives the same embedding.

Nets are run in batches of the input's declared batch size by default (the last batch is
padded with repeated images and the padding dropped), so layers that need whole batches,
such as a TripletLoss over sets, still run; the other inputs (labels, other towers) get
zeros. Every image is embedded once however often the lists name it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from caffe2torch.data.images import read_image, to_chw, why_unreadable
from caffe2torch.data.listfile import ListEntry, read_list_file
from caffe2torch.data.sources import BadItemError
from caffe2torch.data.transform import Transformer
from caffe2torch.errors import CaffeError, DataError
from caffe2torch.metric.retrieval import mean_average_precision, recall_at_k
from caffe2torch.metric.triplet import (
    TripletAccuracy,
    all_triplets_accuracy,
    triplet_accuracy,
)
from caffe2torch.metric.verification import (
    RocCurve,
    accuracy_at,
    best_threshold,
    equal_error_rate,
    pair_distances,
    roc_auc,
    roc_curve,
)
from caffe2torch.suggest import close_names, did_you_mean

# the loss layers whose first bottom is the embedding of the first tower
METRIC_LOSS_TYPES = ("ContrastiveLoss", "TripletLoss", "NPairLoss")


# --------------------------------------------------------------------------- preprocessing


@dataclass(frozen=True)
class Preprocess:
    """How one image file becomes the C x H x W input of the net."""

    input_blob: str
    transform: Transformer
    new_height: int = 0
    new_width: int = 0
    is_color: bool = True
    root: str = ""
    cwd: str = "."

    def __call__(self, image: np.ndarray, item: str = "") -> np.ndarray:
        """An OpenCV image (H x W grey or H x W x C BGR, 0-255) -> float32 C x H x W."""
        if image.ndim == 3 and not self.is_color and image.shape[2] != 1:
            raise DataError(f"{item or 'image'}: a colour image where the net reads grey "
                            "ones", hint="pass H x W arrays, or image files")
        if image.ndim == 2 and self.is_color:  # as imread(IMREAD_COLOR) reads a grey file
            image = np.repeat(image[:, :, None], 3, axis=2)
        if self.new_height > 0 and self.new_width > 0 and image.shape[:2] != (
                self.new_height, self.new_width):
            import cv2

            image = cv2.resize(image, (self.new_width, self.new_height),
                               interpolation=cv2.INTER_LINEAR)
        return self.transform(to_chw(image), item=item)

    def read(self, name: str) -> np.ndarray | None:
        """The image file ``root`` + ``name`` (None when it cannot be read)."""
        path = self.root + name  # plain concatenation, as ImageData does
        if not os.path.isabs(path):
            path = os.path.join(self.cwd, path)
        return read_image(path, self.new_height, self.new_width, self.is_color)


def _eval_transform(layer: Any | None, where: str, cwd: str) -> Transformer:
    from caffe2torch.proto import caffe_pb2

    param = caffe_pb2.TransformationParameter()
    if layer is not None and layer.HasField("transform_param"):
        param.CopyFrom(layer.transform_param)
    param.ClearField("mirror")  # evaluation embeds the image itself, never a flip
    return Transformer(param, "TEST", cwd, where)


def _image_layer(layers: Sequence[Any], input_blob: str | None) -> Any | None:
    for layer in layers:
        if layer.top and (input_blob is None or layer.top[0] == input_blob):
            return layer
    return None


def preprocess_for_layers(
    layers: Sequence[Any],
    input_blob: str | None = None,
    input_shape: Sequence[int] | None = None,
    cwd: str = ".",
) -> Preprocess:
    """The preprocessing of the data layer feeding ``input_blob`` (default: the first data
    layer) among ``layers`` (LayerParameters of one phase); ``input_shape`` is the blob's
    N x C x H x W when known (it decides grey/colour and the size where the layer does
    not)."""
    layer = _image_layer(layers, input_blob)
    if layer is None:
        if input_blob is None:
            raise CaffeError("the net has no data layer or input to feed images to")
        raise CaffeError(f"no data layer of the net has the top '{input_blob}'",
                         hint="name a top of an Input, ImageData or Data layer")
    where = f"layer '{layer.name}'"
    transform = _eval_transform(layer if layer.type != "Input" else None, where, cwd)
    shape = list(input_shape) if input_shape is not None else []
    if not shape and layer.type == "Input" and layer.input_param.shape:
        shape = list(layer.input_param.shape[0].dim)
    channels = shape[1] if len(shape) == 4 else None
    height, width, is_color, root = 0, 0, True, ""
    if layer.type == "ImageData":
        p = layer.image_data_param
        height, width, is_color, root = int(p.new_height), int(p.new_width), bool(
            p.is_color), p.root_folder
    elif channels is not None:
        is_color = channels != 1
    if layer.type != "ImageData" and not (transform.crop_h or transform.crop_w) and len(shape) == 4:
        height, width = int(shape[2]), int(shape[3])  # fit the input's declared size
    if transform.force_gray:
        is_color = False
    elif transform.force_color:
        is_color = True
    return Preprocess(input_blob=layer.top[0], transform=transform, new_height=height,
                      new_width=width, is_color=is_color, root=root, cwd=cwd)


def preprocess_for(net: Any, input_blob: str | None = None, cwd: str = ".") -> Preprocess:
    """The preprocessing of a built net (its data layers and input shapes)."""
    layers = list(net.data_layers)
    if not layers and net.inputs:
        from caffe2torch.proto import caffe_pb2

        fake = caffe_pb2.LayerParameter(name=net.inputs[0], type="Input",
                                        top=[net.inputs[0]])
        layers = [fake]
    first = _image_layer(layers, None)
    blob = input_blob or (first.top[0] if first is not None else None)
    shape = net.blob_shapes.get(blob) if blob else None
    return preprocess_for_layers(layers, blob, shape, cwd)


# --------------------------------------------------------------------------- embedding


@dataclass(frozen=True)
class ImageRef:
    """An image to embed and, for messages, where it was listed."""

    name: str
    list_path: str | None = None
    line: int | None = None


def default_feature_blob(net: Any) -> str:
    """The blob to use as the embedding when none is named: the net's one output that is
    neither a loss nor an unused data top (a label), else the first bottom of its metric
    loss layer (ContrastiveLoss, TripletLoss, NPairLoss)."""
    plain = [name for name in net.outputs
             if name not in net.loss_weights and name not in net.inputs]
    if len(plain) == 1:
        return plain[0]
    for layer in net.ir.layers:
        if layer.type in METRIC_LOSS_TYPES and layer.bottoms:
            return layer.bottoms[0].name
    raise CaffeError(
        "cannot tell which blob is the embedding"
        + (f": the net has {len(plain)} non-loss outputs ({', '.join(plain)})" if plain
           else ""),
        hint="name it (feature_blob=..., or --feature BLOB on the command line)")


def _forward(net: Any, pre: Preprocess, feature: str, inputs: Iterable[np.ndarray],
             count: int, batch: int) -> np.ndarray:
    """Run ``inputs`` (C x H x W arrays, in order) through the net in padded batches."""
    shapes = net.blob_shapes
    out: list[np.ndarray] = []
    stack: list[np.ndarray] = []

    def flush() -> None:
        # pad the last batch with repeated images (dropped again below)
        x = np.stack([stack[i] for i in np.resize(np.arange(len(stack)), batch)])
        feed: dict[str, Any] = {}
        for name in net.inputs:
            rest = tuple(shapes.get(name, (len(x),)))[1:]
            feed[name] = x if name == pre.input_blob else np.zeros((len(x), *rest),
                                                                   np.float32)
        with torch.no_grad():
            result = net(feed, blobs=[feature])[feature]
        out.append(result.detach().float().cpu().numpy().reshape(len(x), -1)[:len(stack)])
        stack.clear()

    for item in inputs:
        stack.append(item)
        if len(stack) == batch:
            flush()
    if stack:
        flush()
    if not out or sum(len(o) for o in out) != count:
        raise CaffeError("no image to embed")
    return np.concatenate(out)


def _resolve(net: Any, feature_blob: str | None, batch: int | None,
             preprocess: Preprocess | None) -> tuple[Preprocess, str, int]:
    pre = preprocess or preprocess_for(net)
    feature = feature_blob or default_feature_blob(net)
    if feature not in net.blob_shapes:
        close = close_names(feature, net.blob_shapes, cutoff=0.5)
        raise CaffeError(f"the {net.phase} net has no blob '{feature}'",
                         hint=did_you_mean(close, quote="'"))
    if batch is None:
        declared = net.blob_shapes.get(pre.input_blob) or (1,)
        batch = int(declared[0]) if declared and declared[0] else 1
    if batch < 1:
        raise CaffeError(f"the batch size must be >= 1, got {batch}")
    return pre, feature, batch


def _read_refs(pre: Preprocess, refs: Sequence[ImageRef]) -> Iterable[np.ndarray]:
    for ref in refs:
        img = pre.read(ref.name)
        if img is None:
            name = pre.root + ref.name
            message, hint = why_unreadable(name, name if os.path.isabs(name)
                                           else os.path.join(pre.cwd, name))
            raise BadItemError(message, path=ref.list_path, line=ref.line, hint=hint)
        yield pre(img, f"{ref.list_path}:{ref.line}" if ref.list_path else ref.name)


def embed_images(
    net: Any,
    images_or_paths: Sequence[str | os.PathLike[str] | ImageRef] | np.ndarray,
    feature_blob: str | None = None,
    batch: int | None = None,
    preprocess: Preprocess | None = None,
) -> np.ndarray:
    """N x D embeddings (float32) of image files or of an array of images.

    ``images_or_paths``: file names (read with the net's data layer settings, see the
    module docstring) or an N x H x W / N x H x W x C uint8 array of images as OpenCV
    gives them (BGR); either goes through the same resize and transform.
    ``feature_blob``: the embedding blob (default: see ``default_feature_blob``).
    ``batch``: images per forward pass (default: the input's declared batch size).
    """
    pre, feature, batch = _resolve(net, feature_blob, batch, preprocess)
    net.eval()
    if isinstance(images_or_paths, np.ndarray):
        arr = images_or_paths
        if arr.ndim not in (3, 4):
            raise CaffeError(f"images must be N x H x W or N x H x W x C, got shape "
                             f"{arr.shape}")
        items: Iterable[np.ndarray] = (pre(img, f"image {i}") for i, img in enumerate(arr))
        return _forward(net, pre, feature, items, len(arr), batch)
    refs = [r if isinstance(r, ImageRef) else ImageRef(os.fspath(r)) for r in images_or_paths]
    return _forward(net, pre, feature, _read_refs(pre, refs), len(refs), batch)


def _embed_unique(net: Any, refs: Sequence[ImageRef], feature: str | None, batch: int | None,
                  pre: Preprocess | None) -> tuple[np.ndarray, np.ndarray]:
    """Embed each distinct name once; returns (embeddings of the distinct names, index of
    each ref's row)."""
    names = [r.name for r in refs]
    _, first, which = np.unique(np.array(names, dtype=object), return_index=True,
                                return_inverse=True)
    unique_refs = [refs[i] for i in first]
    return embed_images(net, unique_refs, feature, batch, pre), which.ravel()


# --------------------------------------------------------------------------- list files


def _refs(path: str, entries: Sequence[ListEntry]) -> list[ImageRef]:
    return [ImageRef(e.name, path, e.line) for e in entries]


def _aligned(paths: Sequence[str]) -> list[list[ListEntry]]:
    """Read list files that must have one line per item, aligned by line."""
    lists = [read_list_file(p) for p in paths]
    sizes = [len(x) for x in lists]
    if len(set(sizes)) > 1:
        short = int(np.argmin(sizes))
        long = int(np.argmax(sizes))
        raise DataError(
            f"{os.fspath(paths[long])} has {sizes[long]} lines but {os.fspath(paths[short])} "
            f"has {sizes[short]}: aligned lists need the same length",
            path=os.fspath(paths[short]), line=sizes[short] + 1,
            hint="line i of each list belongs to item i")
    return lists


def read_pair_lists(list1: str, list2: str) -> tuple[list[ImageRef], list[ImageRef], np.ndarray]:
    """Two aligned pair lists (``path sim`` per line, the same sim 1/0 on both lines)."""
    first, second = _aligned([list1, list2])
    same = np.array([e.label for e in first])
    other = np.array([e.label for e in second])
    for entries, labels, path in ((first, same, list1), (second, other, list2)):
        bad = np.flatnonzero((labels != 0) & (labels != 1))
        if bad.size:
            e = entries[bad[0]]
            raise DataError(f"pair label {e.label} is not 0 (dissimilar) or 1 (similar)",
                            path=os.fspath(path), line=e.line,
                            hint="pair lists carry the pair's similarity, not a class")
    differ = np.flatnonzero(same != other)
    if differ.size:
        i = int(differ[0])
        raise DataError(
            f"pair label {second[i].label} here but {first[i].label} on line "
            f"{first[i].line} of {os.fspath(list1)}: the lists are not aligned",
            path=os.fspath(list2), line=second[i].line,
            hint="both lines of a pair carry the same label")
    return _refs(os.fspath(list1), first), _refs(os.fspath(list2), second), same


def read_triplet_lists(anchor: str, positive: str, negative: str
                       ) -> tuple[list[list[ImageRef]], list[np.ndarray]]:
    """Three aligned lists (``path class`` per line): the anchor's and the positive's
    classes must agree, the negative's differ (unless every label is the same, as in lists
    that carry no class)."""
    lists = _aligned([anchor, positive, negative])
    labels = [np.array([e.label for e in x]) for x in lists]
    paths = [os.fspath(p) for p in (anchor, positive, negative)]
    checks = ((1, labels[1] != labels[0], "the positive's class {got} differs from the "
               "anchor's {want}"),
              (2, labels[2] == labels[0], "the negative's class {got} is the anchor's"))
    informative = len(np.unique(np.concatenate(labels))) > 1
    for k, wrong, text in checks:
        bad = np.flatnonzero(wrong)
        if bad.size and (k == 1 or informative):
            i = int(bad[0])
            raise DataError(text.format(got=labels[k][i], want=labels[0][i])
                            + f" (line {lists[0][i].line} of {paths[0]})",
                            path=paths[k], line=lists[k][i].line,
                            hint="line i of the anchor, positive and negative lists is "
                            "triplet i")
    return [_refs(p, x) for p, x in zip(paths, lists)], labels


def read_labelled_list(path: str) -> tuple[list[ImageRef], np.ndarray]:
    """A ``path class`` list."""
    entries = read_list_file(path)
    return _refs(os.fspath(path), entries), np.array([e.label for e in entries])


# --------------------------------------------------------------------------- evaluations


@dataclass(frozen=True)
class PairEvaluation:
    """Pair verification: ``accuracy`` of "same when distance <= ``threshold``" on the test
    pairs (those not used to choose the threshold), ``auc``/``eer``/``roc`` over every test
    pair."""

    accuracy: float
    threshold: float
    validation_accuracy: float
    auc: float
    eer: float
    roc: RocCurve
    n_pairs: int
    n_validation: int
    n_scored: int
    distances: np.ndarray
    same: np.ndarray
    embeddings: np.ndarray  # one row per distinct image


# every triplet of the listed images is scored up to this many distinct images (~15 s)
EVERY_TRIPLET_LIMIT = 10_000


@dataclass(frozen=True)
class TripletEvaluation:
    """``accuracy``: over the listed triplets; ``every_triplet``: over every triplet the
    listed images make with their classes (None above ``EVERY_TRIPLET_LIMIT`` images, or
    when no class has two images)."""

    accuracy: TripletAccuracy
    n_triplets: int
    embeddings: np.ndarray
    labels: np.ndarray  # class of each embedding row
    every_triplet: TripletAccuracy | None = None


@dataclass(frozen=True)
class RetrievalEvaluation:
    recall: dict[int, float]
    map: float
    n_queries: int
    n_gallery: int
    embeddings: np.ndarray  # queries (then gallery items when a gallery is given)
    labels: np.ndarray


def _pair_distances(net: Any, refs1: list[ImageRef], refs2: list[ImageRef],
                    feature: str | None, batch: int | None, pre: Preprocess | None
                    ) -> tuple[np.ndarray, np.ndarray]:
    emb, which = _embed_unique(net, refs1 + refs2, feature, batch, pre)
    n = len(refs1)
    return pair_distances(emb[which[:n]], emb[which[n:]]), emb


def evaluate_pairs(
    net: Any,
    list1: str,
    list2: str,
    feature_blob: str | None = None,
    *,
    val_lists: tuple[str, str] | None = None,
    validation_fraction: float = 0.5,
    seed: int = 0,
    batch: int | None = None,
    preprocess: Preprocess | None = None,
) -> PairEvaluation:
    """Verify the pairs of aligned lists ``list1``/``list2``.

    The distance threshold is chosen for the best accuracy on validation pairs: those of
    ``val_lists`` when given (then every test pair is scored), else a random
    ``validation_fraction`` of the test pairs (``seed``), the rest being scored. AUC, EER
    and the ROC curve need no threshold and use every test pair."""
    refs1, refs2, same = read_pair_lists(list1, list2)
    d, emb = _pair_distances(net, refs1, refs2, feature_blob, batch, preprocess)
    n = len(d)
    if val_lists is not None:
        v1, v2, val_same = read_pair_lists(*val_lists)
        val_d, _ = _pair_distances(net, v1, v2, feature_blob, batch, preprocess)
        scored = np.arange(n)
    else:
        if not 0 < validation_fraction < 1:
            raise CaffeError(f"the validation fraction must be between 0 and 1, got "
                             f"{validation_fraction}")
        n_val = round(validation_fraction * n)
        if n_val < 1 or n_val >= n:
            raise DataError(f"{n} pair(s) cannot be split into validation and test pairs",
                            path=os.fspath(list1),
                            hint="list more pairs, or give separate validation lists")
        order = np.random.default_rng(seed).permutation(n)
        val_d, val_same, scored = d[order[:n_val]], same[order[:n_val]], np.sort(order[n_val:])
    threshold, val_acc = best_threshold(val_d, val_same)
    return PairEvaluation(
        accuracy=accuracy_at(d[scored], same[scored], threshold),
        threshold=threshold,
        validation_accuracy=val_acc,
        auc=roc_auc(d, same),
        eer=equal_error_rate(d, same),
        roc=roc_curve(d, same),
        n_pairs=n,
        n_validation=len(val_d),
        n_scored=len(scored),
        distances=d,
        same=same,
        embeddings=emb,
    )


def evaluate_triplets(
    net: Any,
    anchor_list: str,
    positive_list: str,
    negative_list: str,
    feature_blob: str | None = None,
    *,
    batch: int | None = None,
    preprocess: Preprocess | None = None,
) -> TripletEvaluation:
    """Triplet accuracy over three aligned lists, per anchor class too."""
    (ra, rp, rn), labels = read_triplet_lists(anchor_list, positive_list, negative_list)
    emb, which = _embed_unique(net, ra + rp + rn, feature_blob, batch, preprocess)
    n = len(ra)
    acc = triplet_accuracy(emb[which[:n]], emb[which[n:2 * n]], emb[which[2 * n:]],
                           labels[0])
    classes = np.empty(len(emb), dtype=np.int64)
    classes[which] = np.concatenate(labels)
    every = None
    if len(emb) <= EVERY_TRIPLET_LIMIT:
        # ValueError: one class only, or no class with two images, so there is no triplet
        with contextlib.suppress(ValueError):
            every = all_triplets_accuracy(emb, classes)
    return TripletEvaluation(accuracy=acc, n_triplets=n, embeddings=emb, labels=classes,
                             every_triplet=every)


def evaluate_retrieval(
    net: Any,
    query_list: str,
    gallery_list: str | None = None,
    feature_blob: str | None = None,
    ks: Sequence[int] = (1, 5, 10),
    *,
    batch: int | None = None,
    preprocess: Preprocess | None = None,
) -> RetrievalEvaluation:
    """Recall@K and mAP of ``query_list`` (``path class`` lines) against ``gallery_list``,
    or leave-one-out within the query list."""
    q_refs, q_labels = read_labelled_list(query_list)
    g_refs, g_labels = (read_labelled_list(gallery_list) if gallery_list is not None
                        else ([], q_labels[:0]))
    emb, which = _embed_unique(net, q_refs + g_refs, feature_blob, batch, preprocess)
    rows = emb[which]
    queries, gallery = rows[:len(q_refs)], rows[len(q_refs):] if g_refs else None
    gl = g_labels if g_refs else None
    source = os.fspath(gallery_list if gallery_list is not None else query_list)
    try:
        recall = recall_at_k(queries, q_labels, ks, gallery, gl)
        m_ap = mean_average_precision(queries, q_labels, gallery, gl)
    except ValueError as e:
        raise DataError(str(e), path=source,
                        hint="each query's class needs another item in the gallery") from None
    return RetrievalEvaluation(recall=recall, map=m_ap, n_queries=len(q_refs),
                               n_gallery=len(g_refs) if g_refs else len(q_refs) - 1,
                               embeddings=rows, labels=np.concatenate([q_labels, g_labels]))


# --------------------------------------------------------------------------- building


_DATA_TYPES = ("Input", "ImageData", "Data", "HDF5Data", "MemoryData", "DummyData",
               "WindowData")


def _data_layers(model: str | os.PathLike[str], state: Any) -> tuple[Any, Any, list[Any]]:
    from caffe2torch.io import read_net_with_positions
    from caffe2torch.ir.netstate import layer_included

    net_param, source_map = read_net_with_positions(os.fspath(model))
    data = [ly for ly in net_param.layer
            if ly.type in _DATA_TYPES and layer_included(ly, state)]
    return net_param, source_map, data


def load_metric_net(
    model: str | os.PathLike[str],
    weights: str | os.PathLike[str] | Sequence[str] | None = None,
    *,
    lists: Sequence[str] = (),
    phase: str = "TEST",
    level: int = 0,
    stages: Sequence[str] = (),
    input_blob: str | None = None,
    batch: int | None = None,
    preprocess_from: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    share: Any = "declared",
) -> tuple[Any, Preprocess]:
    """Build ``model`` for evaluation; returns the net and its image preprocessing.

    The tops of its ImageData/Data layers get their shape from the first image of
    ``lists`` after preprocessing, so the layers' own sources need not exist. ``batch``
    overrides the declared batch size. ``preprocess_from``: another prototxt (say the
    train_test net of a deploy net) whose first data layer of the same phase gives the
    preprocessing, the deploy net's input shape deciding the rest. ``share``: build_net's
    weight sharing."""
    from caffe2torch.graph import build_net
    from caffe2torch.ir.netstate import NetState

    state = NetState.of(phase, level, list(stages))
    net_param, source_map, data = _data_layers(model, state)
    pre = preprocess_for_layers(data, input_blob)
    template = None
    if preprocess_from is not None:
        template = _image_layer(_data_layers(preprocess_from, state)[2], None)
        if template is None:
            raise CaffeError(f"no {state.phase} data layer to take the preprocessing from",
                             path=os.fspath(preprocess_from))
    shapes: dict[str, list[int]] = {}
    fed = [ly for ly in data if ly.type in ("ImageData", "Data")]
    if lists and fed:
        entry = read_list_file(lists[0])[0]
        ref = ImageRef(entry.name, os.fspath(lists[0]), entry.line)
        chw = next(iter(_read_refs(pre, [ref])))
        for ly in fed:
            size = ly.image_data_param.batch_size if ly.type == "ImageData" else (
                ly.data_param.batch_size)
            n = int(batch or size or 1)
            shapes[ly.top[0]] = [n, *chw.shape]
            shapes.update({top: [n] for top in ly.top[1:]})
    if batch:
        for ly in data:
            if ly.type == "Input" and ly.input_param.shape:
                for top, shape in zip(ly.top, _repeat(ly.input_param.shape, len(ly.top))):
                    shapes.setdefault(top, [int(batch), *shape.dim[1:]])
    net = build_net(net_param, state, input_shapes=shapes or None, source_map=source_map,
                    share=share)
    paths = [weights] if isinstance(weights, str | os.PathLike) else list(weights or ())
    for w in paths:
        net.copy_from(w)
    net.to(torch.device(device))
    net.eval()
    pre = preprocess_for(net, pre.input_blob)
    if template is not None:
        shape = net.blob_shapes.get(pre.input_blob)
        pre = replace(preprocess_for_layers([template], None, shape), input_blob=pre.input_blob)
    return net, pre


def _repeat(shapes: Sequence[Any], n: int) -> list[Any]:
    # Caffe's Input layer: one shape for all tops, or one per top
    return list(shapes) if len(shapes) == n else [shapes[0]] * n


def as_table(rows: Mapping[str, str]) -> str:
    """``name  value`` lines, names padded to one width."""
    width = max((len(k) for k in rows), default=0)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows.items())


__all__ = [
    "METRIC_LOSS_TYPES",
    "ImageRef",
    "PairEvaluation",
    "Preprocess",
    "RetrievalEvaluation",
    "TripletEvaluation",
    "as_table",
    "default_feature_blob",
    "embed_images",
    "evaluate_pairs",
    "evaluate_retrieval",
    "evaluate_triplets",
    "load_metric_net",
    "preprocess_for",
    "preprocess_for_layers",
    "read_labelled_list",
    "read_pair_lists",
    "read_triplet_lists",
]
