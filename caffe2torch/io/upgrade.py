"""Caffe's upgrades of old net and solver definitions, as src/caffe/util/upgrade_proto.cpp
does them (BVLC 9b89154), in the same order:

1. V0 -> V1: ``layers { layer { type: "conv" ... } }`` -> ``layers { type: CONVOLUTION }``,
   ``padding`` layers folded into the next convolution's ``pad`` (UpgradeV0Net);
2. old data-transformation fields of V1 data layers -> ``transform_param``
   (UpgradeNetDataTransformation);
3. V1 -> V2: ``layers`` with enum types -> ``layer`` with string types, blobs_lr /
   weight_decay / param / blob_share_mode -> ``param { }`` (UpgradeV1Net);
4. ``input`` / ``input_dim`` / ``input_shape`` -> an ``Input`` layer first (UpgradeNetInput);
5. BatchNorm layers with three param specs -> lr_mult 0 and decay_mult 0 on all three
   (UpgradeNetBatchNorm).

Solvers: enum ``solver_type`` -> string ``type`` (UpgradeSolverType).

Where Caffe LOG(FATAL)s we raise UpgradeError; where it LOG(ERROR)s and carries on ("had one
or more problems ... continuing anyway") we carry on too and keep the message in
``UpgradeReport.warnings``. The functions never modify their argument.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import cast

from caffe2torch.errors import UpgradeError
from caffe2torch.io.positions import SourceMap
from caffe2torch.proto import caffe_pb2

log = logging.getLogger(__name__)

NetParameter = caffe_pb2.NetParameter
V1 = caffe_pb2.V1LayerParameter
SolverParameter = caffe_pb2.SolverParameter

UPGRADE_HINT = "upgrade the V1 part first: `caffe2torch upgrade FILE`"

# UpgradeV0LayerType: V0 type string -> V1 enum name.
V0_TYPES: dict[str, str] = {
    "accuracy": "ACCURACY",
    "bnll": "BNLL",
    "concat": "CONCAT",
    "conv": "CONVOLUTION",
    "data": "DATA",
    "dropout": "DROPOUT",
    "euclidean_loss": "EUCLIDEAN_LOSS",
    "flatten": "FLATTEN",
    "hdf5_data": "HDF5_DATA",
    "hdf5_output": "HDF5_OUTPUT",
    "im2col": "IM2COL",
    "images": "IMAGE_DATA",
    "infogain_loss": "INFOGAIN_LOSS",
    "innerproduct": "INNER_PRODUCT",
    "lrn": "LRN",
    "multinomial_logistic_loss": "MULTINOMIAL_LOGISTIC_LOSS",
    "pool": "POOLING",
    "relu": "RELU",
    "sigmoid": "SIGMOID",
    "softmax": "SOFTMAX",
    "softmax_loss": "SOFTMAX_LOSS",
    "split": "SPLIT",
    "tanh": "TANH",
    "window_data": "WINDOW_DATA",
}

# UpgradeV1LayerType: V1 enum name -> V2 type string.
V1_TYPES: dict[str, str] = {
    "NONE": "",
    "ABSVAL": "AbsVal",
    "ACCURACY": "Accuracy",
    "ARGMAX": "ArgMax",
    "BNLL": "BNLL",
    "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss",
    "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution",
    "DATA": "Data",
    "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss",
    "ELTWISE": "Eltwise",
    "EXP": "Exp",
    "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data",
    "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss",
    "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss",
    "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN",
    "MEMORY_DATA": "MemoryData",
    "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN",
    "POOLING": "Pooling",
    "POWER": "Power",
    "RELU": "ReLU",
    "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
    "SILENCE": "Silence",
    "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "SPLIT": "Split",
    "SLICE": "Slice",
    "TANH": "TanH",
    "WINDOW_DATA": "WindowData",
    "THRESHOLD": "Threshold",
}

# UpgradeSolverType: enum name -> string.
SOLVER_TYPES: dict[str, str] = {
    "SGD": "SGD",
    "NESTEROV": "Nesterov",
    "ADAGRAD": "AdaGrad",
    "RMSPROP": "RMSProp",
    "ADADELTA": "AdaDelta",
    "ADAM": "Adam",
}

# V1LayerParameter fields that UpgradeV1LayerParameter handles one by one; every other
# field of V1LayerParameter is a *_param message copied to the LayerParameter field of the
# same name.
_V1_SPECIAL = frozenset({
    "bottom", "top", "name", "include", "exclude", "type", "blobs", "param",
    "blob_share_mode", "blobs_lr", "weight_decay", "loss_weight", "layer",
})


@dataclass
class UpgradeReport:
    """What an upgrade did.

    ``origin[i]`` is the index, among the input's layer blocks (``layers`` for V0/V1,
    ``layer`` for V2), of the block that upgraded layer ``i`` comes from, or None for the
    Input layer made from ``input`` fields. ``steps`` names the upgrades applied;
    ``warnings`` are the problems Caffe logs and continues past.
    """

    net: caffe_pb2.NetParameter
    origin: list[int | None]
    steps: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- checks


def needs_v0_upgrade(net: caffe_pb2.NetParameter) -> bool:
    """NetNeedsV0ToV1Upgrade: some ``layers`` block holds a V0 ``layer``."""
    return any(lp.HasField("layer") for lp in net.layers)


def needs_v1_upgrade(net: caffe_pb2.NetParameter) -> bool:
    """NetNeedsV1ToV2Upgrade: the net has ``layers`` blocks."""
    return len(net.layers) > 0


_DATA_FIELDS = ("scale", "mean_file", "crop_size", "mirror")
_DATA_PARAMS = {  # V1 type -> the per-type param holding the old transformation fields
    V1.DATA: "data_param",
    V1.IMAGE_DATA: "image_data_param",
    V1.WINDOW_DATA: "window_data_param",
}


def needs_data_upgrade(net: caffe_pb2.NetParameter) -> bool:
    """NetNeedsDataUpgrade: a V1 data layer sets scale/mean_file/crop_size/mirror in its
    own param instead of transform_param."""
    for lp in net.layers:
        pname = _DATA_PARAMS.get(lp.type)
        if pname is not None:
            p = getattr(lp, pname)
            if any(p.HasField(f) for f in _DATA_FIELDS):
                return True
    return False


def needs_input_upgrade(net: caffe_pb2.NetParameter) -> bool:
    """NetNeedsInputUpgrade: top-level ``input`` fields."""
    return len(net.input) > 0


def needs_batchnorm_upgrade(net: caffe_pb2.NetParameter) -> bool:
    """NetNeedsBatchNormUpgrade: a BatchNorm layer declares three param specs."""
    return any(lp.type == "BatchNorm" and len(lp.param) == 3 for lp in net.layer)


def needs_upgrade(net: caffe_pb2.NetParameter) -> bool:
    """NetNeedsUpgrade: any of the five net upgrades applies."""
    return (
        needs_v0_upgrade(net)
        or needs_v1_upgrade(net)
        or needs_data_upgrade(net)
        or needs_input_upgrade(net)
        or needs_batchnorm_upgrade(net)
    )


def solver_needs_upgrade(solver: caffe_pb2.SolverParameter) -> bool:
    """SolverNeedsTypeUpgrade, plus inline nets that need an upgrade."""
    return solver.HasField("solver_type") or any(needs_upgrade(n) for n in _inline_nets(solver))


# ----------------------------------------------------------------------------- nets


def mixed_error(source: SourceMap | None = None, path: str | None = None) -> UpgradeError:
    """Caffe's refusal of a net with both ``layer`` and ``layers`` (UpgradeV1Net), with the
    line ranges of both kinds when the source is known."""
    caffe_says = (
        "Refusing to upgrade inconsistent NetParameter input; the definition includes both "
        "'layer' and 'layers' fields"
    )
    message = f"cannot mix V1 `layers` and V2 `layer` blocks in one net ({caffe_says})"
    hint = (
        "upgrade the V1 part: put the `layers { ... }` blocks in a file of their own, run "
        "`caffe2torch upgrade FILE` on it and paste the `layer` blocks it prints in their place"
    )
    line = col = None
    if source is not None and source.blocks:
        runs = source.runs()
        where = {"layers": [], "layer": []}  # type: dict[str, list[str]]
        for kind, a, b in runs:
            where[kind].append(f"{a}-{b}" if b != a else str(a))
        message += (
            f": V1 `layers` at lines {', '.join(where['layers'])}; "
            f"V2 `layer` at lines {', '.join(where['layer'])}"
        )
        first = source.blocks[0].kind
        second = next(b for b in source.blocks if b.kind != first)
        line, col = second.start_line, second.start_col
        v1_typed = [
            b for b in source.blocks
            if b.kind == "layer" and b.type_token is not None and b.type_token[:1] not in "\"'"
        ]
        if v1_typed:
            lines = ", ".join(str(b.start_line) for b in v1_typed[:5])
            hint += (
                f" (the `layer` blocks at lines {lines} use V1 enum types such as "
                f"`type: {v1_typed[0].type_token}`: they are V1 blocks too, write them as "
                "`layers`)"
            )
    return UpgradeError(message, path=path, line=line, col=col, hint=hint)


def upgrade_net_report(
    net: caffe_pb2.NetParameter, *, source: SourceMap | None = None, path: str | None = None
) -> UpgradeReport:
    """UpgradeNetAsNeeded on a copy of ``net``; see :class:`UpgradeReport`."""
    if len(net.layer) and len(net.layers):
        raise mixed_error(source, path)
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    n_blocks = len(net.layers) if len(net.layers) else len(net.layer)
    report = UpgradeReport(out, list(range(n_blocks)))

    def locate(i: int) -> dict[str, object]:
        if source is not None and i is not None and 0 <= i < len(source.blocks):
            b = source.blocks[i]
            return {"path": path, "line": b.start_line, "col": b.start_col}
        return {"path": path}

    if needs_v0_upgrade(out):
        out, kept = _upgrade_v0_net(out, report.warnings, locate)
        report.origin = list(kept)
        report.steps.append("V0 -> V1")
    if needs_data_upgrade(out):
        _upgrade_data_transformation(out)
        report.steps.append("data transformation fields -> transform_param")
    if needs_v1_upgrade(out):
        out = _upgrade_v1_net(out, report.warnings)
        report.steps.append("V1 -> V2")
    if needs_input_upgrade(out):
        made_layer = _upgrade_input(out, path, source)
        if made_layer:
            report.origin = [None, *report.origin]
        report.steps.append("input fields -> Input layer")
    if needs_batchnorm_upgrade(out):
        _upgrade_batchnorm(out)
        report.steps.append("BatchNorm param specs -> lr_mult 0")
    report.net = out
    for w in report.warnings:
        log.warning("%s%s", f"{path}: " if path else "", w)
    return report


def upgrade_net(net: caffe_pb2.NetParameter, *, path: str | None = None) -> caffe_pb2.NetParameter:
    """The upgraded copy of ``net`` (V0/V1/old-field nets -> current V2). Used for text and
    binary nets alike (a V1 caffemodel upgrades the same way, blobs included)."""
    return upgrade_net_report(net, path=path).net


def _upgrade_v0_net(
    net: caffe_pb2.NetParameter, warnings: list[str], locate
) -> tuple[caffe_pb2.NetParameter, list[int]]:
    """UpgradeV0Net: padding layers folded, then each V0 layer -> V1. Like Caffe, the result
    keeps only name, layers, input, input_dim and force_backward of the input."""
    padded, kept = _fold_padding_layers(net, locate)
    out = caffe_pb2.NetParameter()
    if padded.HasField("name"):
        out.name = padded.name
    for idx, lc in zip(kept, padded.layers):
        _upgrade_v0_layer(lc, out.layers.add(), warnings, locate(idx))
    out.input.extend(padded.input)
    out.input_dim.extend(padded.input_dim)
    if padded.HasField("force_backward"):
        out.force_backward = padded.force_backward
    return out, kept


def _fold_padding_layers(
    net: caffe_pb2.NetParameter, locate
) -> tuple[caffe_pb2.NetParameter, list[int]]:
    """UpgradeV0PaddingLayers: drop each V0 ``padding`` layer and give its pad to the conv
    (or pool) layer that reads its output. Returns the net and the kept layer indices."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layers[:]
    kept: list[int] = []
    last_top: dict[str, int] = dict.fromkeys(net.input, -1)
    for i, lc in enumerate(net.layers):
        v0 = lc.layer
        if v0.type != "padding":
            out.layers.add().CopyFrom(lc)
            kept.append(i)
        for j, blob in enumerate(lc.bottom):
            if blob not in last_top:
                raise UpgradeError(
                    f"unknown bottom blob {blob!r} of layer {v0.name!r}: no earlier layer or "
                    f"input produces it (Caffe: Unknown blob input {blob} to layer {j})",
                    **locate(i),
                )
            src_idx = last_top[blob]
            if src_idx == -1:
                continue
            src = net.layers[src_idx]
            if src.layer.type != "padding":
                continue
            problem = None
            if v0.type not in ("conv", "pool"):
                problem = f"a padding layer feeds a {v0.type!r} layer (only conv or pool)"
            elif len(lc.bottom) != 1:
                problem = "a conv/pool layer fed by a padding layer must have one bottom"
            elif len(src.bottom) != 1 or len(src.top) != 1:
                problem = "a padding layer must have one bottom and one top"
            if problem:
                raise UpgradeError(
                    f"cannot fold padding layer {src.layer.name!r} into {v0.name!r}: {problem}",
                    **locate(i),
                )
            target = out.layers[len(out.layers) - 1]
            target.layer.pad = src.layer.pad
            target.bottom[j] = src.bottom[0]
        for blob in lc.top:
            last_top[blob] = i
    return out, kept


# V0 field -> {V0 type: (V1 sub-message, field)}; a field set on another type is logged.
_V0_FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "num_output": {"conv": ("convolution_param", "num_output"),
                   "innerproduct": ("inner_product_param", "num_output")},
    "biasterm": {"conv": ("convolution_param", "bias_term"),
                 "innerproduct": ("inner_product_param", "bias_term")},
    "weight_filler": {"conv": ("convolution_param", "weight_filler"),
                      "innerproduct": ("inner_product_param", "weight_filler")},
    "bias_filler": {"conv": ("convolution_param", "bias_filler"),
                    "innerproduct": ("inner_product_param", "bias_filler")},
    "pad": {"conv": ("convolution_param", "pad"), "pool": ("pooling_param", "pad")},
    "kernelsize": {"conv": ("convolution_param", "kernel_size"),
                   "pool": ("pooling_param", "kernel_size")},
    "group": {"conv": ("convolution_param", "group")},
    "stride": {"conv": ("convolution_param", "stride"), "pool": ("pooling_param", "stride")},
    "pool": {"pool": ("pooling_param", "pool")},
    "dropout_ratio": {"dropout": ("dropout_param", "dropout_ratio")},
    "local_size": {"lrn": ("lrn_param", "local_size")},
    "alpha": {"lrn": ("lrn_param", "alpha")},
    "beta": {"lrn": ("lrn_param", "beta")},
    "k": {"lrn": ("lrn_param", "k")},
    "source": {"data": ("data_param", "source"),
               "hdf5_data": ("hdf5_data_param", "source"),
               "images": ("image_data_param", "source"),
               "window_data": ("window_data_param", "source"),
               "infogain_loss": ("infogain_loss_param", "source")},
    "batchsize": {"data": ("data_param", "batch_size"),
                  "hdf5_data": ("hdf5_data_param", "batch_size"),
                  "images": ("image_data_param", "batch_size"),
                  "window_data": ("window_data_param", "batch_size")},
    "rand_skip": {"data": ("data_param", "rand_skip"),
                  "images": ("image_data_param", "rand_skip")},
    "shuffle_images": {"images": ("image_data_param", "shuffle")},
    "new_height": {"images": ("image_data_param", "new_height")},
    "new_width": {"images": ("image_data_param", "new_width")},
    "concat_dim": {"concat": ("concat_param", "concat_dim")},
    "det_fg_threshold": {"window_data": ("window_data_param", "fg_threshold")},
    "det_bg_threshold": {"window_data": ("window_data_param", "bg_threshold")},
    "det_fg_fraction": {"window_data": ("window_data_param", "fg_fraction")},
    "det_context_pad": {"window_data": ("window_data_param", "context_pad")},
    "det_crop_mode": {"window_data": ("window_data_param", "crop_mode")},
    "hdf5_output_param": {"hdf5_output": ("hdf5_output_param", "")},
}
# V0 transformation fields go to transform_param whatever the type.
_V0_TRANSFORM = {"scale": "scale", "meanfile": "mean_file", "cropsize": "crop_size",
                 "mirror": "mirror"}
# Caffe's log spells one of them differently.
_V0_LOG_NAME = {"shuffle_images": "shuffle"}


def _upgrade_v0_layer(
    lc: caffe_pb2.V1LayerParameter, out: caffe_pb2.V1LayerParameter, warnings: list[str], where
) -> None:
    """UpgradeV0LayerParameter: one V0 ``layers { layer { ... } }`` -> a V1 layer."""
    out.bottom.extend(lc.bottom)
    out.top.extend(lc.top)
    if not lc.HasField("layer"):
        return
    v0 = lc.layer
    if v0.HasField("name"):
        out.name = v0.name
    ltype = v0.type
    if v0.HasField("type"):
        if ltype not in V0_TYPES:
            raise UpgradeError(
                f"unknown V0 layer type {ltype!r} in layer {v0.name!r} (Caffe: Unknown layer "
                f"name: {ltype})",
                hint="V0 types: " + ", ".join(sorted(V0_TYPES)),
                **where,
            )
        out.type = cast(V1.LayerType, V1.LayerType.Value(V0_TYPES[ltype]))
    for blob in v0.blobs:
        out.blobs.add().CopyFrom(blob)
    out.blobs_lr.extend(v0.blobs_lr)
    out.weight_decay.extend(v0.weight_decay)
    for v0_field, targets in _V0_FIELDS.items():
        if not v0.HasField(v0_field):
            continue
        target = targets.get(ltype)
        if target is None:
            name = _V0_LOG_NAME.get(v0_field, v0_field)
            warnings.append(f"Unknown parameter {name} for layer type {ltype}")
            continue
        sub, fname = target
        value = getattr(v0, v0_field)
        msg = getattr(out, sub)
        if v0_field == "hdf5_output_param":
            msg.CopyFrom(value)
        elif v0_field in ("weight_filler", "bias_filler"):
            getattr(msg, fname).CopyFrom(value)
        elif v0_field == "pool":
            msg.pool = caffe_pb2.PoolingParameter.PoolMethod.Value(
                caffe_pb2.V0LayerParameter.PoolMethod.Name(value)
            )
        elif sub == "convolution_param" and fname in ("pad", "kernel_size", "stride"):
            getattr(msg, fname).append(value)  # repeated in ConvolutionParameter
        else:
            setattr(msg, fname, value)
    for v0_field, fname in _V0_TRANSFORM.items():
        if v0.HasField(v0_field):
            setattr(out.transform_param, fname, getattr(v0, v0_field))


def _upgrade_data_transformation(net: caffe_pb2.NetParameter) -> None:
    """UpgradeNetDataTransformation. Like Caffe's macro, every V1 DATA / IMAGE_DATA /
    WINDOW_DATA layer gets (possibly empty) ``<type>_param`` and ``transform_param``
    messages, even when it has nothing to move."""
    for lp in net.layers:
        pname = _DATA_PARAMS.get(lp.type)
        if pname is None:
            continue
        p = getattr(lp, pname)
        p.SetInParent()
        lp.transform_param.SetInParent()
        for f in _DATA_FIELDS:
            if p.HasField(f):
                setattr(lp.transform_param, f, getattr(p, f))
                p.ClearField(f)


def _upgrade_v1_net(net: caffe_pb2.NetParameter, warnings: list[str]) -> caffe_pb2.NetParameter:
    """UpgradeV1Net: every ``layers`` block -> a ``layer`` block; other fields kept."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    out.ClearField("layers")
    out.ClearField("layer")
    for i, v1 in enumerate(net.layers):
        if not _upgrade_v1_layer(v1, out.layer.add(), warnings):
            warnings.append(f"Upgrade of input layer {i} failed.")
    return out


def _upgrade_v1_layer(
    v1: caffe_pb2.V1LayerParameter, out: caffe_pb2.LayerParameter, warnings: list[str]
) -> bool:
    """UpgradeV1LayerParameter: one V1 layer -> a V2 LayerParameter."""
    ok = True
    out.bottom.extend(v1.bottom)
    out.top.extend(v1.top)
    if v1.HasField("name"):
        out.name = v1.name
    for rule in v1.include:
        out.include.add().CopyFrom(rule)
    for rule in v1.exclude:
        out.exclude.add().CopyFrom(rule)
    if v1.HasField("type"):
        ename = V1.LayerType.Name(v1.type)
        if ename not in V1_TYPES:
            raise UpgradeError(f"unknown V1 layer type {ename} in layer {v1.name!r}")
        out.type = V1_TYPES[ename]
    for blob in v1.blobs:
        out.blobs.add().CopyFrom(blob)

    def spec(i: int) -> caffe_pb2.ParamSpec:
        while len(out.param) <= i:
            out.param.add()
        return out.param[i]

    for i, name in enumerate(v1.param):
        spec(i).name = name
    for i, mode in enumerate(v1.blob_share_mode):
        spec(i).share_mode = cast(caffe_pb2.ParamSpec.DimCheckMode,
                                  caffe_pb2.ParamSpec.DimCheckMode.Value(V1.DimCheckMode.Name(mode)))
    for i, lr in enumerate(v1.blobs_lr):
        spec(i).lr_mult = lr
    for i, decay in enumerate(v1.weight_decay):
        spec(i).decay_mult = decay
    out.loss_weight.extend(v1.loss_weight)
    # every per-type *_param (and transform_param, loss_param) is copied as is
    layer_fields = out.DESCRIPTOR.fields_by_name
    for fd, value in v1.ListFields():
        if fd.is_extension or fd.name in _V1_SPECIAL:
            continue
        target = layer_fields.get(fd.name)
        if target is None or target.message_type is not fd.message_type:
            warnings.append(f"V1 field {fd.name} of layer {v1.name!r} has no V2 equivalent")
            ok = False
            continue
        getattr(out, fd.name).CopyFrom(value)
    if v1.HasField("layer"):
        warnings.append("Input NetParameter has V0 layer -- ignoring.")
        ok = False
    return ok


def _upgrade_input(net: caffe_pb2.NetParameter, path: str | None, source: SourceMap | None) -> bool:
    """UpgradeNetInput: ``input`` + ``input_shape``/``input_dim`` -> an Input layer placed
    first; a bare ``input`` (old caffemodels) is simply dropped. Returns whether a layer was
    made."""
    has_shape = len(net.input_shape) > 0
    has_dim = len(net.input_dim) > 0
    made = False
    if has_shape or has_dim:
        n = len(net.input)
        short = len(net.input_shape) < n if has_shape else len(net.input_dim) < 4 * n
        if short:
            pos = source.top("input") if source is not None else None
            line, col = pos if pos is not None else (None, None)
            got = (f"{len(net.input_shape)} input_shape" if has_shape
                   else f"{len(net.input_dim)} input_dim values")
            need = f"{n} input_shape" if has_shape else f"{4 * n} input_dim values"
            raise UpgradeError(
                f"{n} input blob(s) need {need}, the net has {got}",
                hint="give each `input:` one `input_shape { dim: ... }` (or four `input_dim`)",
                path=path, line=line, col=col,
            )
        layer = caffe_pb2.LayerParameter(name="input", type="Input")
        for i, blob in enumerate(net.input):
            layer.top.append(blob)
            shape = layer.input_param.shape.add()
            if has_shape:
                shape.CopyFrom(net.input_shape[i])
            else:
                shape.dim.extend(net.input_dim[4 * i:4 * i + 4])
        layers = [layer, *net.layer]
        del net.layer[:]
        net.layer.extend(layers)
        made = True
    net.ClearField("input")
    net.ClearField("input_shape")
    net.ClearField("input_dim")
    return made


def _upgrade_batchnorm(net: caffe_pb2.NetParameter) -> None:
    """UpgradeNetBatchNorm: the old BatchNorm declared its three blobs as params; they are
    statistics, so all three get lr_mult 0 and decay_mult 0 (other ParamSpec fields kept)."""
    for lp in net.layer:
        if lp.type == "BatchNorm" and len(lp.param) == 3:
            for ps in lp.param:
                ps.lr_mult = 0.0
                ps.decay_mult = 0.0


# ----------------------------------------------------------------------------- solvers


def _inline_nets(solver: caffe_pb2.SolverParameter) -> list[caffe_pb2.NetParameter]:
    nets = []
    for name in ("net_param", "train_net_param"):
        if solver.HasField(name):
            nets.append(getattr(solver, name))
    nets.extend(solver.test_net_param)
    return nets


def upgrade_solver(
    solver: caffe_pb2.SolverParameter, *, path: str | None = None, source: SourceMap | None = None
) -> caffe_pb2.SolverParameter:
    """UpgradeSolverAsNeeded on a copy: enum ``solver_type`` -> string ``type``.

    Inline nets (``net_param``, ``train_net_param``, ``test_net_param``) are upgraded too.
    Caffe does not do that (Solver::InitTrainNet copies an inline net without
    UpgradeNetAsNeeded, so a V1 inline net ends up empty); upgrading them is our improvement.
    """
    out = caffe_pb2.SolverParameter()
    out.CopyFrom(solver)
    if out.HasField("solver_type"):
        if out.HasField("type"):
            pos = source.top("solver_type") if source is not None else None
            line, col = pos if pos is not None else (None, None)
            old = caffe_pb2.SolverParameter.SolverType.Name(out.solver_type)
            raise UpgradeError(
                "the solver sets both the old `solver_type` (enum) and the new `type` "
                "(string); Caffe refuses it (Failed to upgrade solver: old solver_type field "
                "(enum) and new type field (string) cannot be both specified)",
                hint=f"delete `solver_type: {old}` and keep `type`",
                path=path, line=line, col=col,
            )
        ename = caffe_pb2.SolverParameter.SolverType.Name(out.solver_type)
        out.type = SOLVER_TYPES[ename]
        out.ClearField("solver_type")
    for net in _inline_nets(out):
        if needs_upgrade(net):
            net.CopyFrom(upgrade_net(net, path=path))
    return out


def snapshot_prefix(solver: caffe_pb2.SolverParameter, solver_path: str) -> str:
    """UpgradeSnapshotPrefixProperty, as ``caffe train`` applies it when reading a solver
    file: no snapshot_prefix -> the solver path without its extension; a prefix that is a
    directory -> that directory / the solver file's stem."""
    import os

    stem, _ = os.path.splitext(solver_path)
    if not solver.HasField("snapshot_prefix"):
        return stem
    prefix = solver.snapshot_prefix
    if os.path.isdir(prefix):
        return os.path.join(prefix, os.path.basename(stem))
    return prefix
