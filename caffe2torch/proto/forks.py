"""Which Caffe fork each non-BVLC part of proto/caffe.proto comes from.

Hand-written from the ``// fork:`` comments of proto/caffe.proto (tests check
the two agree with the compiled descriptor). The linter uses it to tell users
that a field or layer type is not BVLC Caffe and which fork defines it.
"""

from __future__ import annotations

SSD = "weiliu89/caffe (SSD)"
FAST_RCNN = "rbgirshick/caffe-fast-rcnn (Fast/Faster R-CNN)"
RFCN = "daijifeng001/caffe-rfcn (R-FCN)"
PSPNET = "hszhao/PSPNet (also DeepLab-v2)"
# one BN type and bn_param, three forks (PSPNet's has (1, C, 1, 1) blobs, the others (1, C);
# Cysu/caffe's fourth blob is the moving (var + eps)^-1/2)
BN_FORKS = "hszhao/PSPNet (also DeepLab-v2, yjxiong/caffe, Cysu/caffe)"
CYSU = "Cysu/caffe (dgd_person_reid)"
RECT_CROP = ("Cysu/caffe (dgd_person_reid: a crop of any height and width, which Data and "
             "ImageData apply), hszhao/PSPNet and DeepLab-v2 (ImageSegData's crop)")
# DeepLab's own Caffe (caffe-deeplab): V1 nets such as DeepLab-LargeFOV's name its types
# by enum values BVLC never had (IMAGE_SEG_DATA, SEG_ACCURACY, INTERP)
DEEPLAB_V1 = "DeepLab (caffe-deeplab V1 nets; ImageSegData / SegAccuracy of DeepLab-v2)"
SHUFFLENET = "farmingyard/ShuffleNet"
CTC = "BVLC/caffe PR #6354 (warp-ctc / CRNN)"
YOLO = "BVLC/caffe PR #5906 (YOLO v2)"
CRFASRNN = "BVLC/caffe PR #5630 (CRF-as-RNN, torrvision/crfasrnn)"
DETECTNET = "NVIDIA/caffe (DetectNet, BVLC/caffe PR #4780)"
TRIPLET = "BVLC/caffe PR #5019 / #2603 (TripletLoss)"
TRIPLET_OLD = "BVLC/caffe PR #2603 (TripletLoss, older spelling)"
CENTER_LOSS = "ydwen/caffe-face (CenterLoss)"
SPHEREFACE = "wy1iu/sphereface (A-Softmax)"
HAPPYNEAR = "happynear/caffe-windows (NormFace / AM-Softmax)"
ARCFACE = "xialuxi/arcface-caffe"
CEIL_MODE = "BVLC/caffe PR #3057 (ceil_mode; DenseNet/DPN/ResNeXt ports)"
SENET = "hujie-frank/SENet"
HED = "s9xie/hed"
SEGNET = "alexgkendall/caffe-segnet (SegNet)"
CONV_DW = "farmingyard/caffe-mobilenet (conv_dw; ShuffleNet's deploy files use it)"
DEPTHWISE = "yonghenglh6/DepthwiseConvolution (and its copies, e.g. eric612/MobileNet-YOLO)"
RELU6 = "chuanqi305/ssd (MobileNetv2-SSDLite)"
REFINEDET = "sfzhang15/RefineDet (an SSD fork)"
FLOWNET2 = "lmb-freiburg/flownet2 (FlowNet 2.0)"
CAFFE_PRO = "yihui-he/caffe-pro (channel pruning)"

# Fields that forks added to messages BVLC Caffe also defines.
FORK_FIELDS: dict[str, dict[str, str]] = {
    "LayerParameter": {
        "annotated_data_param": SSD,
        "multibox_loss_param": SSD,
        "permute_param": SSD,
        "prior_box_param": SSD,
        "detection_output_param": SSD,
        "detection_evaluate_param": SSD,
        "norm_param": SSD,
        "video_data_param": SSD,
        "roi_pooling_param": FAST_RCNN,
        "smooth_l1_loss_param": FAST_RCNN,
        "box_annotator_ohem_param": RFCN,
        "psroi_pooling_param": RFCN,
        "bn_param": BN_FORKS,
        "interp_param": PSPNET,
        "shuffle_channel_param": SHUFFLENET,
        "ctc_loss_param": CTC,
        "continuation_indicator_param": CTC,
        "labelsequence_accuracy_param": CTC,
        "reorg_param": YOLO,
        "yolo_detection_output_param": YOLO,
        "multi_stage_meanfield_param": CRFASRNN,
        "detectnet_groundtruth_param": DETECTNET,
        "detectnet_augmentation_param": DETECTNET,
        "triplet_loss_param": TRIPLET,
        "center_loss_param": CENTER_LOSS,
        "margin_inner_product_param": SPHEREFACE,
        "inner_distance_param": HAPPYNEAR,
        "normalize_param": HAPPYNEAR,
        "general_contrastive_loss_param": HAPPYNEAR,
        "general_triplet_loss_param": HAPPYNEAR,
        "label_specific_rescale_param": HAPPYNEAR,
        "label_specific_add_param": HAPPYNEAR,
        "channel_scale_param": HAPPYNEAR,
        "flip_param": HAPPYNEAR,
        "cosin_add_m_param": ARCFACE,
        "adacos_add_m_scale_param": ARCFACE,
        "focal_loss_param": ARCFACE,
        "upsample_param": SEGNET,
    },
    "TransformationParameter": {
        "crop_h": SSD,
        "crop_w": SSD,
        "resize_param": SSD,
        "noise_param": SSD,
        "emit_constraint": SSD,
        "distort_param": SSD,
        "expand_param": SSD,
    },
    "LossParameter": {"pre_fixed_normalizer": RFCN},
    "AccuracyParameter": {"min_is_better": HAPPYNEAR},
    "DropoutParameter": {"scale_train": FAST_RCNN},
    "InnerProductParameter": {"normalize": HAPPYNEAR},
    "ParameterParameter": {"blob_filler": HAPPYNEAR},
    "PoolingParameter": {"ceil_mode": CEIL_MODE},
    "SoftmaxParameter": {"hard_ratio": HAPPYNEAR, "normalize_type": HAPPYNEAR},
    "SolverParameter": {
        "eval_type": SSD,
        "ap_version": SSD,
        "plateau_winsize": SSD,
        "show_per_class_result": SSD,
    },
    "SolverState": {"minimum_loss": SSD, "iter_last_event": SSD},
    # Fields a second fork added to a fork-only message.
    "CenterLossParameter": {"distance_type": HAPPYNEAR},
    "TripletLossParameter": {"num_triplets": TRIPLET_OLD},
}

# Enum values that forks added to BVLC enums: {"Message.Enum": {value: fork}}.
FORK_ENUM_VALUES: dict[str, dict[str, str]] = {
    "LossParameter.NormalizationMode": {"PRE_FIXED": RFCN},
}

# Messages that only forks define (nested messages are named "Outer.Inner").
FORK_MESSAGES: dict[str, str] = {
    **dict.fromkeys(
        [
            "LabelMapItem", "LabelMap", "Sampler", "SampleConstraint", "BatchSampler",
            "EmitConstraint", "NormalizedBBox", "Annotation", "AnnotationGroup",
            "AnnotatedDatum", "AnnotatedDataParameter", "ResizeParameter",
            "SaltPepperParameter", "NoiseParameter", "DistortionParameter",
            "ExpansionParameter", "NonMaximumSuppressionParameter", "SaveOutputParameter",
            "MultiBoxLossParameter", "PermuteParameter", "PriorBoxParameter",
            "DetectionOutputParameter", "DetectionEvaluateParameter", "NormalizeParameter",
            "VideoDataParameter",
        ],
        SSD,
    ),
    "ROIPoolingParameter": FAST_RCNN,
    "SmoothL1LossParameter": FAST_RCNN,
    "PSROIPoolingParameter": RFCN,
    "BoxAnnotatorOHEMParameter": RFCN,
    "BNParameter": BN_FORKS,
    "InterpParameter": PSPNET,
    "ShuffleChannelParameter": SHUFFLENET,
    "CtcLossParameter": CTC,
    "ContinuationIndicatorParameter": CTC,
    "LabelsequenceAccuracyParameter": CTC,
    "ReorgParameter": YOLO,
    "YoloDetectionOutputParameter": YOLO,
    "MultiStageMeanfieldParameter": CRFASRNN,
    "DetectNetGroundTruthParameter": DETECTNET,
    "DetectNetGroundTruthParameter.ClassMapping": DETECTNET,
    "DetectNetAugmentationParameter": DETECTNET,
    "TripletLossParameter": TRIPLET,
    "CenterLossParameter": CENTER_LOSS,
    "MarginInnerProductParameter": SPHEREFACE,
    **dict.fromkeys(
        [
            "InnerDistanceParameter", "FeatureNormalizeParameter",
            "GeneralContrastiveParameter", "GeneralTripletParameter",
            "LabelSpecificRescaleParameter", "LabelSpecificAddParameter", "FlipParameter",
            "ChannelScaleParameter",
        ],
        HAPPYNEAR,
    ),
    "CosinAddmParameter": ARCFACE,
    "AdaCosAddmScaleParameter": ARCFACE,
    "FocalLossParameter": ARCFACE,
    "UpsampleParameter": SEGNET,
}

# Fields whose number here differs from the fork that defined them, because
# that number belongs to BVLC (or to a more used fork):
# {message: {field: (the fork's own number, why it moved)}}. A binary file
# written by that fork stores the setting under the old number.
RELOCATED_FIELDS: dict[str, dict[str, tuple[int, str]]] = {
    "LayerParameter": {
        "interp_param": (143, "BVLC input_param"),
        "yolo_detection_output_param": (204, "SSD detection_output_param"),
        "triplet_loss_param": (147, "BVLC swish_param (PR #2603 used 139, BVLC batch_norm_param)"),
        "center_loss_param": (147, "BVLC swish_param"),
        "margin_inner_product_param": (147, "BVLC swish_param"),
        "adacos_add_m_scale_param": (211, "center_loss_param here"),
        "upsample_param": (137, "BVLC embed_param"),
    },
    "PoolingParameter": {"ceil_mode": (13, "BVLC round_mode, with inverted values")},
    "SolverParameter": {
        "eval_type": (41, "BVLC layer_wise_reduce"),
        "ap_version": (42, "BVLC weights"),
    },
    "TripletLossParameter": {"num_triplets": (3, "num_negatives here")},
}

# Layer types that BVLC Caffe does not have, with the fork that defines them.
# "Normalize" exists in two forks: SSD's (norm_param) and NormFace's
# (normalize_param); the param that is set tells them apart.
FORK_LAYER_TYPES: dict[str, str] = {
    "AnnotatedData": SSD,
    "MultiBoxLoss": SSD,
    "Permute": SSD,
    "PriorBox": SSD,
    "DetectionOutput": SSD,
    "DetectionEvaluate": SSD,
    "Normalize": f"{SSD} or {HAPPYNEAR}",
    "VideoData": SSD,
    "ROIPooling": FAST_RCNN,
    "SmoothL1Loss": FAST_RCNN,
    "PSROIPooling": RFCN,
    "BoxAnnotatorOHEM": RFCN,
    "SmoothL1LossOHEM": RFCN,
    "SoftmaxWithLossOHEM": RFCN,
    "BN": BN_FORKS,
    "Interp": PSPNET,
    "ShuffleChannel": SHUFFLENET,
    "ConvolutionDepthwise": CONV_DW,
    "DepthwiseConvolution": DEPTHWISE,
    "ReLU6": RELU6,
    "CtcLoss": CTC,
    "ContinuationIndicator": CTC,
    "LabelsequenceAccuracy": CTC,
    "Reorg": YOLO,
    "YoloDetectionOutput": YOLO,
    "MultiStageMeanfield": CRFASRNN,
    "DetectNetTransformation": DETECTNET,
    "L1Loss": DETECTNET,
    "TripletLoss": TRIPLET,
    "CenterLoss": CENTER_LOSS,
    "MarginInnerProduct": SPHEREFACE,
    "InnerDistance": HAPPYNEAR,
    "GeneralContrastiveLoss": HAPPYNEAR,
    "GeneralTripletLoss": HAPPYNEAR,
    "LabelSpecificRescale": HAPPYNEAR,
    "LabelSpecificAdd": HAPPYNEAR,
    "ChannelScale": HAPPYNEAR,
    "Flip": HAPPYNEAR,
    "CosinAddm": ARCFACE,
    "AdaCosAddmScale": ARCFACE,
    "FocalLoss": ARCFACE,
    "NormL2": ARCFACE,
    "Axpy": SENET,
    "ImageLabelmapData": HED,
    "Upsample": SEGNET,
    "DenseImageData": SEGNET,
    "ImageSegData": PSPNET,
    "SegAccuracy": PSPNET,
    "Local": "BVLC/caffe PR (LOCAL, locally connected)",
}


def fork_of_field(message: str, field: str) -> str | None:
    """The fork that defines ``message.field``, or None for BVLC fields.

    ``message`` is the descriptor's name relative to the package, e.g.
    "LayerParameter" or "DetectNetGroundTruthParameter.ClassMapping".
    """
    added = FORK_FIELDS.get(message, {}).get(field)
    if added is not None:
        return added
    return FORK_MESSAGES.get(message)


def fork_of_layer_type(layer_type: str) -> str | None:
    """The fork that defines layer type ``layer_type``, or None for BVLC types."""
    return FORK_LAYER_TYPES.get(layer_type)


LOCAL_PR = "BVLC/caffe PR (LOCAL, locally connected)"

# Fields that forks define and our schema does not have (a net read without the fork's
# caffe.proto keeps them aside, io.extra): {message: {field: fork}}. The linter names the
# fork; reading with the fork's proto (--proto) gives their types.
FOREIGN_FIELDS: dict[str, dict[str, str]] = {
    "LayerParameter": {
        "dense_image_data_param": SEGNET,
        "local_param": LOCAL_PR,
        "seg_accuracy_param": PSPNET,
    },
    "V1LayerParameter": {
        "dense_image_data_param": SEGNET,
        "local_param": LOCAL_PR,
        "seg_accuracy_param": DEEPLAB_V1,
        "softmaxloss_param": DEEPLAB_V1,  # its ignore_label, read by SoftmaxWithLoss
        "interp_param": DEEPLAB_V1,  # INTERP's, in a V1 block (read as V2's interp_param)
    },
    "BNParameter": {
        "bn_mode": SEGNET,
        "scale_filler": SEGNET,
        "shift_filler": SEGNET,
    },
    "ScaleParameter": {"min_value": HAPPYNEAR, "max_value": HAPPYNEAR},
    "DropoutParameter": {"sample_weights_test": SEGNET},
    "LossParameter": {"weight_by_label_freqs": SEGNET, "class_weighting": SEGNET},
    "ImageDataParameter": {
        "pair_size": "xiaolonw/caffe-video_triplet",
        # caffe-pro's ImageData: the shorter side resized to new_dim, bicubic for cv::resize
        "new_dim": CAFFE_PRO,
        "bicubic": CAFFE_PRO,
        # ImageSegData's (fields 15 and 16 of the forks)
        "ignore_label": PSPNET,
        "label_type": PSPNET,
    },
    "NetParameter": {"richness": CYSU},  # its cuDNN workspace limit, in MB
    "DataParameter": {"shuffle_pool_size": CYSU},
    "TransformationParameter": {"crop_height": RECT_CROP, "crop_width": RECT_CROP,
                                "scale_factors": PSPNET},
    # the anchor refinement module's objectness threshold (RefineDet's caffe.proto, field 24)
    "MultiBoxLossParameter": {"objectness_score": REFINEDET},
    "DetectionOutputParameter": {"objectness_score": REFINEDET},
    # DeepLab v1's name for the dilation (its im2col "hole" algorithm)
    "ConvolutionParameter": {"hole": DEEPLAB_V1},
}

# Foreign fields that every layer reading the block takes from the kept fields without the
# fork's schema: {message: {field: what caffe2torch does with it}}. The linter says so
# instead of asking for the fork's caffe.proto.
FOREIGN_FIELDS_READ: dict[str, dict[str, str]] = {
    "ConvolutionParameter": {
        "hole": "caffe2torch's Convolution reads it as the dilation, as DeepLab v1 does",
    },
    "TransformationParameter": {
        "crop_height": "caffe2torch's Data, ImageData and ImageSegData crop to it",
        "crop_width": "caffe2torch's Data, ImageData and ImageSegData crop to it",
    },
}

# Bottom counts of BVLC or SSD types that only a fork's version of the type takes, and
# what those bottoms mean there: {type: {count: (fork, meaning, what to do)}}. The count
# check (Layer::CheckBlobCounts) still refuses them, as the caffe2torch type follows BVLC
# or SSD; the error says which fork wrote the net.
FORK_BOTTOM_COUNTS: dict[str, dict[int, tuple[str, str, str]]] = {
    # flownet2's EltwiseLayer: MinBottomBlobs() 1; SUM gives coeff * bottom
    "Eltwise": {1: (FLOWNET2, "its Eltwise takes one bottom, which SUM multiplies by coeff",
                    "a Power layer { power_param { scale: COEFF } } computes the same; or "
                    "register the fork's Eltwise with register_layer(..., replace=True)")},
}


def fork_bottom_count(layer_type: str, count: int) -> tuple[str, str] | None:
    """(why, hint) when ``count`` bottoms is what a fork's version of ``layer_type`` takes."""
    known = FORK_BOTTOM_COUNTS.get(layer_type, {}).get(count)
    if known is None:
        return None
    fork, meaning, todo = known
    return f" ({count} is what {fork} takes: {meaning})", todo


# V1 enum layer types that forks added ({name: fork}).
FOREIGN_V1_TYPES: dict[str, str] = {
    "LOCAL": LOCAL_PR,
    "IMAGE_SEG_DATA": DEEPLAB_V1,
    "SEG_ACCURACY": DEEPLAB_V1,
}


def fork_of_foreign(message: str, field: str) -> str | None:
    """The fork that defines ``message.field`` when our schema lacks it (None if unknown)."""
    if message == "V1LayerParameter" and field in FOREIGN_V1_TYPES:
        return FOREIGN_V1_TYPES[field]
    return FOREIGN_FIELDS.get(message, {}).get(field)
