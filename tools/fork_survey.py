"""Survey: nets of Caffe forks read with and without the fork's own caffe.proto.

For each fork below (none of them in ../shared/corpus), its ``src/caffe/proto/caffe.proto``
and a few of its real prototxt files are taken from local mirrors of the repositories (bare
git directories, e.g. what ``git clone --mirror`` makes, named ``owner+name``); nothing is
copied into this repository. Each file is then

* read with ``proto=`` (parse), linted with it (no crash), built in every phase it declares;
* read without it (parse, upgrade, ``info``, lint), and built;

and docs/forks.md gets the table. A build that needs data (a Data layer's channels) gets
the shapes the error asks for (batch, 3, crop or 224, crop or 224 for images, batch for
labels); a layer type nobody registered must fail with its name and the plug-in hint.

A second section (``ZOO``) takes nets users commonly bring (model zoos, papers' code; none
in ../shared/corpus) through what a user runs without a fork schema: ``caffe2torch info``,
``lint``, ``upgrade`` when V0/V1, a build of every phase, and ``export --verify`` for
deploy nets when onnxruntime is installed.

    python tools/fork_survey.py --mirrors /path/to/mirrors --out docs/forks.md
    python tools/fork_survey.py --mirrors /path/to/mirrors --only zoo   # one section
    python tools/fork_survey.py --mirrors /path/to/mirrors --only zoo --repo intel/caffe
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

# nets found in a repository's history (the newest snapshot no longer has them)
_REFINEDET_R101 = "wj1tr0y/RefineDet@59a69630e7bcc09270131d400ce2f5722af38ba2"
_R101 = "examples/refinedet/models/ResNet/coco/refinedet_resnet101_512x512/"
_VOVNET_REFINEDET = "youngwanLEE/VoVNet-RefineDet@738193153641436b04015e47e96b32a120359e13"
_VOV = "jobs/VoVNet/VOC0712/RefineDet_VoVNet39_320x320/"

# (label, repository[@branch] of the proto, path of caffe.proto,
#  [(repository, prototxt path[, input shapes the net needs, as --input-shape gives
#    [, phases to build]])])
SURVEY: list[tuple[str, str, str, list[tuple[Any, ...]]]] = [
    ("SegNet", "alexgkendall/caffe-segnet", "src/caffe/proto/caffe.proto", [
        ("alexgkendall/SegNet-Tutorial", "Example_Models/segnet_pascal.prototxt"),
        ("alexgkendall/SegNet-Tutorial", "Example_Models/bayesian_segnet_camvid.prototxt"),
        ("alexgkendall/SegNet-Tutorial", "Example_Models/segnet_basic_camvid.prototxt"),
        ("alexgkendall/SegNet-Tutorial", "Models/bayesian_segnet_basic_train.prototxt",
         {"data": [4, 3, 360, 480], "label": [4, 1, 360, 480]}),
    ]),
    ("ENet", "TimoSaemann/caffe-enet", "src/caffe/proto/caffe.proto", [
        ("TimoSaemann/ENet", "prototxts/enet_deploy.prototxt"),
        ("TimoSaemann/ENet", "prototxts/enet_deploy_final.prototxt"),
        ("TimoSaemann/ENet", "prototxts/enet_train_encoder_decoder.prototxt"),
    ]),
    ("Fast R-CNN", "rbgirshick/caffe-fast-rcnn@fast-rcnn", "src/caffe/proto/caffe.proto", [
        ("rbgirshick/fast-rcnn", "models/CaffeNet/test.prototxt"),
        ("rbgirshick/fast-rcnn", "models/CaffeNet/train.prototxt"),
        ("rbgirshick/fast-rcnn", "models/VGG16/test.prototxt"),
        # fc6/fc7 split in two by truncated SVD (tools/compress_net.py)
        ("rbgirshick/fast-rcnn", "models/VGG_CNN_M_1024/compressed/test.prototxt"),
        ("rbgirshick/fast-rcnn", "models/VGG_CNN_M_1024/test.prototxt"),
    ]),
    ("R-FCN", "daijifeng001/caffe-rfcn", "src/caffe/proto/caffe.proto", [
        ("daijifeng001/R-FCN", "models/rfcn_prototxts/ResNet-50L_res3a/test.prototxt"),
        ("daijifeng001/R-FCN", "models/rfcn_prototxts/ResNet-50L_OHEM_res3a/train_val.prototxt"),
        ("daijifeng001/R-FCN", "models/rfcn_prototxts/ResNet-101L_res3a/test.prototxt"),
    ]),
    ("SENet", "BVLC/caffe", "src/caffe/proto/caffe.proto", [
        ("hujie-frank/SENet", "models/SE-ResNet-50.prototxt"),
        ("hujie-frank/SENet", "models/SE-BN-Inception.prototxt"),
        ("hujie-frank/SENet", "models/SE-ResNeXt-50.prototxt"),
    ]),
    ("video triplet", "xiaolonw/caffe-video_triplet", "src/caffe/proto/caffe.proto", [
        ("xiaolonw/caffe-video_triplet", "rank_scripts/rank_alexnet/imagenet_train.prototxt"),
        ("xiaolonw/caffe-video_triplet", "rank_scripts/rank_alexnet/unsup_net_deploy.prototxt"),
    ]),
    ("TSN", "yjxiong/caffe", "src/caffe/proto/caffe.proto", [
        ("yjxiong/temporal-segment-networks",
         "models/ucf101/tsn_bn_inception_rgb_deploy.prototxt"),
        ("yjxiong/temporal-segment-networks",
         "models/ucf101/tsn_bn_inception_flow_train_val.prototxt"),
        ("yjxiong/caffe", "models/action_recognition/vgg_16_rgb_train_val_fast.prototxt"),
        ("yjxiong/caffe", "models/action_recognition/cuhk_action_spatial_vgg_16_deploy.prototxt"),
    ]),
    ("NVIDIA Caffe", "NVIDIA/caffe", "src/caffe/proto/caffe.proto", [
        ("NVIDIA/caffe", "examples/kitti/detectnet_network.prototxt"),
        ("NVIDIA/caffe", "classification/model/deploy.prototxt"),
        ("NVIDIA/caffe", "examples/faceboxes/SSD.prototxt"),
    ]),
    ("caffe-windows (NormFace)", "happynear/caffe-windows", "src/caffe/proto/caffe.proto", [
        ("happynear/caffe-windows", "src/caffe/test/normalize_layer.prototxt"),
        ("happynear/caffe-windows", "src/caffe/test/flip_layer.prototxt"),
        ("happynear/caffe-windows", "src/caffe/test/inner_distance_layer.prototxt"),
        ("happynear/caffe-windows", "src/caffe/test/general_constrastive_layer.prototxt"),
    ]),
    ("DeepLab", "xmyqsh/deeplab-v2", "src/caffe/proto/caffe.proto", [
        # DeepLab v1's 3-top MemoryData (v2 has 2): replaced by inputs, as a user would
        ("martinkersner/train-DeepLab", "DeepLab-LargeFOV/deploy21.prototxt",
         {"data": [1, 3, 505, 505], "label": [1, 1, 505, 505], "data_dim": [1, 1, 1, 2]}),
        ("martinkersner/train-DeepLab", "DeepLab-LargeFOV/deploy4.prototxt",
         {"data": [1, 3, 505, 505], "label": [1, 1, 505, 505], "data_dim": [1, 1, 1, 2]}),
        # DeepLab v1's own image-and-label data layer (IMAGE_SEG_DATA), TRAIN-only in train files
        ("martinkersner/train-DeepLab", "DeepLab-LargeFOV/train.prototxt", {}, ["TRAIN"]),
        ("martinkersner/train-DeepLab", "DeepLab-LargeFOV/test.prototxt", {}, ["TEST"]),
        ("martinkersner/train-DeepLab", "DeepLab-LargeFOV-Semi-Bbox-Fixed/train.prototxt", {},
         ["TRAIN"]),
    ]),
    # the detection fork most SSD-style nets were written for (MobileNet-SSD, Pelee)
    ("SSD", "weiliu89/caffe@ssd", "src/caffe/proto/caffe.proto", [
        # their data layers are TRAIN-only and TEST-only: that phase alone builds, as in Caffe
        ("chuanqi305/MobileNet-SSD", "voc/MobileNetSSD_train.prototxt", {}, ["TRAIN"]),
        ("chuanqi305/MobileNet-SSD", "voc/MobileNetSSD_test.prototxt", {}, ["TEST"]),
        ("chuanqi305/MobileNet-SSD", "voc/MobileNetSSD_deploy.prototxt"),
        ("Robert-JunWang/Pelee", "model/voc/deploy_merged.prototxt"),
    ]),
    ("py-faster-rcnn", "rbgirshick/caffe-fast-rcnn@faster-rcnn", "src/caffe/proto/caffe.proto", [
        ("rbgirshick/py-faster-rcnn", "models/pascal_voc/ZF/faster_rcnn_end2end/test.prototxt"),
        ("rbgirshick/py-faster-rcnn",
         "models/pascal_voc/VGG16/faster_rcnn_end2end/train.prototxt"),
        ("rbgirshick/py-faster-rcnn", "models/pascal_voc/VGG_CNN_M_1024/fast_rcnn/test.prototxt"),
        ("rbgirshick/py-faster-rcnn", "models/coco/VGG16/faster_rcnn_end2end/test.prototxt"),
    ]),
    ("SphereFace", "wy1iu/sphereface", "tools/caffe-sphereface/src/caffe/proto/caffe.proto", [
        ("wy1iu/sphereface", "train/code/sphereface_model.prototxt"),
        ("wy1iu/sphereface", "train/code/sphereface_deploy.prototxt"),
        ("wy1iu/sphereface", "train/model_lib/Sphereface-64/sphereface_64_model.prototxt"),
        ("wy1iu/sphereface", "train/model_lib/Sphereface-64/sphereface_64_deploy.prototxt"),
    ]),
    ("center loss", "ydwen/caffe-face", "src/caffe/proto/caffe.proto", [
        ("ydwen/caffe-face", "face_example/face_train_test.prototxt"),
        ("ydwen/caffe-face", "mnist_example/mnist_train_test.prototxt"),
    ]),
    ("ArcFace / AdaCos", "xialuxi/arcface-caffe", "caffe.proto", [
        # train nets whose only data layer is TRAIN's
        ("xialuxi/arcface-caffe", "cosin_add_m.prototxt", {}, ["TRAIN"]),
        ("xialuxi/arcface-caffe", "AdaCos/adacos_add_m_scale.prototxt", {}, ["TRAIN"]),
        ("xialuxi/arcface-caffe", "mxnet_to_caffe/face.prototxt"),
        ("xialuxi/arcface-caffe", "landmark_and_pose/MobileNet-V2_deploy.prototxt"),
    ]),
    # RefineDet (an SSD fork): its nets come from python generators (examples/refinedet/*.py),
    # not committed to sfzhang15/RefineDet; these are generator outputs users committed
    ("RefineDet", "sfzhang15/RefineDet", "src/caffe/proto/caffe.proto", [
        (_REFINEDET_R101, _R101 + "deploy.prototxt"),
        (_REFINEDET_R101, _R101 + "test.prototxt", {}, ["TEST"]),
        (_REFINEDET_R101, _R101 + "train.prototxt", {}, ["TRAIN"]),
        (_VOVNET_REFINEDET, _VOV + "deploy.prototxt"),
        (_VOVNET_REFINEDET, _VOV + "train.prototxt", {}, ["TRAIN"]),
    ]),
    # S3FD: sfzhang15/SFD has only test scripts (the nets ship with the trained model) and
    # runs on weiliu89's SSD fork; bonseyes/SFD commits the nets
    ("S3FD", "weiliu89/caffe@ssd", "src/caffe/proto/caffe.proto", [
        ("bonseyes/SFD", "models/Original/deploy.prototxt"),
        ("bonseyes/SFD", "models/Original/train.prototxt", {}, ["TRAIN"]),
        ("bonseyes/SFD", "scripts/train/SFD/SFD-640x640-3CH-VGG-CaffeSSD-Float32-Dense/"
         "test.prototxt", {}, ["TEST"]),
        ("bonseyes/SFD", "models/SFD-640x640-3CH-MobileNetV1-CaffeSSD-Float32-Dense/"
         "deploy.prototxt"),
    ]),
    # FlowNet 2.0: lmb-freiburg/flownet2 downloads its nets with the weights; these are its
    # templates (filled in as scripts/run-flownet.py fills them) and a net made from them
    ("FlowNet 2.0", "lmb-freiburg/flownet2", "src/caffe/proto/caffe.proto", [
        ("cdancette/flownet-tools", "models/FlowNet2/FlowNet2_deploy.prototxt.template"),
        ("cdancette/flownet-tools", "models/FlowNet2/FlowNet2_train.prototxt.template"),
        ("cdancette/flownet-tools", "models/FlowNet2-S/FlowNet2-S_deploy.prototxt.template"),
        ("cdancette/flownet-tools", "models/FlowNet2-s-warp-flow-loss/train.prototxt"),
    ]),
    # MATLAB Faster R-CNN (ShaoqingRen/faster_rcnn): its nets come with the model downloads
    # (fetch_data/*.m); its caffe branch has BVLC's models only, these two in versions the
    # shared corpus lacks: a check that the fork's schema reads them
    ("Faster R-CNN (MATLAB)", "ShaoqingRen/caffe@faster-R-CNN", "src/caffe/proto/caffe.proto", [
        ("ShaoqingRen/caffe@faster-R-CNN", "models/bvlc_googlenet/train_val.prototxt"),
        ("ShaoqingRen/caffe@faster-R-CNN", "models/bvlc_reference_caffenet/train_val.prototxt"),
    ]),
    # channel pruning's nets, for its caffe submodule (ImageData's new_dim and bicubic)
    ("channel pruning", "yihui-he/caffe-pro", "src/caffe/proto/caffe.proto", [
        ("yihui-he/channel-pruning", "temp/vgg.prototxt"),
        ("yihui-he/channel-pruning", "temp/resnet-50-cp.prototxt"),
    ]),
    # domain guided dropout for person re-id: its own Data fields and BN variant
    ("DGD (person re-id)", "Cysu/caffe@domain-guided-dropout", "src/caffe/proto/caffe.proto", [
        ("Cysu/dgd_person_reid", "models/jstl/jstl_trainval.prototxt"),
        ("Cysu/dgd_person_reid", "models/dgd/cuhk03_trainval.prototxt"),
        ("Cysu/dgd_person_reid", "models/exfeat_template.prototxt"),
        ("Cysu/dgd_person_reid", "models/jstl/jstl_deploy.prototxt"),
    ]),
]

# Nets users bring from model zoos and papers' code, read as a user reads them: with the
# package's own schema (no fork proto). Files already in ../shared/corpus are left out.
# (label, repository, [(prototxt path[, input shapes the net needs[, phases to build]])])
ZOO: list[tuple[str, str, list[tuple[Any, ...]]]] = [
    ("OpenPose", "CMU-Perceptual-Computing-Lab/openpose", [
        # input_dim 1x1 "defined at runtime": the size the demo feeds
        ("models/pose/body_25/pose_deploy.prototxt", {"image": [1, 3, 368, 368]}),
        ("models/pose/coco/pose_deploy_linevec.prototxt", {"image": [1, 3, 368, 368]}),
        ("models/pose/mpi/pose_deploy_linevec_faster_4_stages.prototxt",
         {"image": [1, 3, 368, 368]}),
        ("models/face/pose_deploy.prototxt", {"image": [1, 3, 368, 368]}),
        ("models/hand/pose_deploy.prototxt", {"image": [1, 3, 368, 368]}),
    ]),
    ("MTCNN", "kpzhang93/MTCNN_face_detection_alignment", [
        ("code/codes/MTCNNv1/model/det2.prototxt",),
        ("code/codes/MTCNNv2/model/det1.prototxt",),
        ("code/codes/MTCNNv2/model/det2.prototxt",),
        ("code/codes/MTCNNv2/model/det3.prototxt",),
    ]),
    ("center loss", "ydwen/caffe-face", [
        ("face_example/face_deploy.prototxt",),
        ("mnist_example/mnist_deploy.prototxt",),
        ("examples/siamese/mnist_siamese_train_test.prototxt",
         {"pair_data": [64, 2, 28, 28], "sim": [64]}),
    ]),
    ("SphereFace", "wy1iu/sphereface", [
        ("tools/caffe-sphereface/examples/siamese/mnist_siamese.prototxt",),
    ]),
    ("SqueezeNet", "DeepScale/SqueezeNet", [
        ("SqueezeNet_v1.1/deploy.prototxt",),
        ("SqueezeNet_v1.0/deploy.prototxt",),
        ("SqueezeNet_v1.0/train_val.prototxt",),
    ]),
    ("DenseNet", "shicai/DenseNet-Caffe", [
        ("DenseNet_161.prototxt",),
        ("DenseNet_169.prototxt",),
    ]),
    ("PSPNet", "hszhao/PSPNet", [
        ("evaluation/prototxt/pspnet101_cityscapes_713.prototxt",),
    ]),
    ("cvjena", "cvjena/cnn-models", [
        ("AlexNet_cvgj/deploy.prototxt",),
        ("AlexNet_cvgj/train.prototxt",),
        ("ResNet_preact/ResNet50_cvgj/deploy.prototxt",),
        ("ResNet_preact/ResNet10_cvgj/train.prototxt",),
        ("VGG19_cvgj/test.prototxt",),
    ]),
    ("GoogLeNet-BN", "lim0606/caffe-googlenet-bn", [
        ("deploy.prototxt",),
        ("train_val.prototxt",),
    ]),
    ("MobileNet-SSD", "chuanqi305/MobileNet-SSD", [
        # train files: their data layer is TRAIN-only, so only TRAIN builds (as in Caffe)
        ("voc/MobileNetSSD_train.prototxt", {"data": [24, 3, 300, 300]}, ["TRAIN"]),
        ("template/MobileNetSSD_deploy_template.prototxt",),
    ]),
    ("MobileNetv2-SSDLite", "chuanqi305/MobileNetv2-SSDLite", [
        ("ssdlite/voc/deploy.prototxt",),
        ("ssdlite/voc/train.prototxt", {"data": [24, 3, 300, 300]}, ["TRAIN"]),
        ("ssd/deploy.prototxt",),
    ]),
    ("DepthwiseConvolution", "yonghenglh6/DepthwiseConvolution", [
        ("example/depthwised_mobilenet_deploy.prototxt",),
    ]),
    ("MobileNet-YOLO", "eric612/MobileNet-YOLO", [
        ("models/darknet_yolov3/yolov3-tiny.prototxt",),
        ("models/darknet/darknet19_deploy.prototxt",),
        ("models/mobilenetv2_voc/ssd_lite/deploy.prototxt",),
        ("models/cityscapes/mobilenet_yolov3_deploy.prototxt",),
    ]),
    ("FCN", "shelhamer/fcn.berkeleyvision.org", [
        ("voc-fcn8s/deploy.prototxt",),
        # Python data layers (voc_layers.py, ...) read the datasets: their tops as inputs
        ("voc-fcn-alexnet/val.prototxt", {"data": [1, 3, 500, 500], "label": [1, 1, 500, 500]}),
        ("siftflow-fcn8s/test.prototxt",
         {"data": [1, 3, 256, 256], "sem": [1, 1, 256, 256], "geo": [1, 1, 256, 256]}),
        ("nyud-fcn32s-color-hha/test.prototxt",
         {"color": [1, 3, 425, 560], "hha": [1, 3, 425, 560], "label": [1, 1, 425, 560]}),
    ]),
    ("HED", "s9xie/hed", [
        # ImageLabelmapData sizes its tops by the first listed image (BSDS500's are 321 x
        # 481 or 481 x 321): given here, the label map as one channel of that size
        ("examples/hed/train_val.prototxt",
         {"data": [1, 3, 321, 481], "label": [1, 1, 321, 481]}),
    ]),
    ("Places365", "CSAILVision/places365", [
        ("deploy_googlenet_places365.prototxt",),
        ("deploy_alexnet_places365.prototxt",),
        ("deploy_vgg16_hybrid1365.prototxt",),
    ]),
    ("age and gender", "GilLevi/AgeGenderDeepLearning", [
        ("gender_net_definitions/deploy.prototxt",),
        ("gender_net_definitions/train_val_test_fold_is_1.prototxt",),
    ]),
    ("triplet loss", "luhaofang/tripletloss", [
        ("deploy.prototxt",),
        ("train.prototxt", {"data": [30, 3, 224, 224], "labels": [30]}, ["TRAIN"]),
    ]),
    ("MobileNet", "shicai/MobileNet-Caffe", [
        ("mobilenet_deploy.prototxt",),
        ("mobilenet_v2_deploy.prototxt",),
    ]),
    ("ResNet (MSRA)", "KaimingHe/deep-residual-networks", [
        ("prototxt/ResNet-50-deploy.prototxt",),
        ("prototxt/ResNet-101-deploy.prototxt",),
        ("prototxt/ResNet-152-deploy.prototxt",),
    ]),
    ("soeaver zoo", "soeaver/caffe-model", [
        ("cls/inception/deploy_inception-v3.prototxt",),
        ("cls/inception/deploy_inception-v4.prototxt",),
        ("cls/inception/deploy_inception-resnet-v2.prototxt",),
        ("cls/inception/deploy_xception.prototxt",),
        ("cls/resnext/deploy_resnext50-32x4d.prototxt",),
        ("cls/dpn/deploy_dpn92.prototxt",),
        ("cls/air/deploy_air50-1x32d.prototxt",),
        ("cls/resnet-v2/deploy_resnet101-v2.prototxt",),
        ("cls/wider-resnet/deploy_wrn50-2.prototxt",),
        ("cls/vgg/deploy_vgg16bn-pytorch.prototxt",),
        ("cls/densenet/deploy_densenet121.prototxt",),
        ("cls/inception/deploy_xception-dw.prototxt",),
        ("cls/resnet-v2/deploy_resnet38a.prototxt",),
        ("cls/inception/deploy_inception-v1-tf.prototxt",),
        ("det/faster_rcnn/models/pascal_voc/air101/rpn_rcnn_deploys/"
         "rpn_deploy_faster_voc_air101-merge.prototxt",),
    ]),
    ("NormFace", "happynear/NormFace", [
        ("prototxt/scaled_cosine_softmax.prototxt",),
        ("prototxt/normalized_Euclidean_triplet.prototxt",),
        ("prototxt/example_of_mirror_face.prototxt",),
        ("mnist/lenet_train_test.prototxt",),
    ]),
    ("AM-Softmax", "happynear/AMSoftmax", [
        ("prototxt/face_deploy_mirror_normalize.prototxt",),
        ("prototxt/face_train_test.prototxt",),
        ("prototxt/GNAP.prototxt",),
        ("prototxt/face_train_test_wo_fn.prototxt",
         {"data": [256, 3, 112, 96], "label": [256]}),
    ]),
    ("RankIQA", "xialeiliu/RankIQA", [
        ("src/RankIQA/live/deploy_vgg.prototxt",),
        ("src/RankIQA/live/train_vgg.prototxt",),
        ("src/FT/live/train_live.prototxt",),
        ("src/FT/tid2013/deploy_vgg.prototxt",),
    ]),
    ("deep hashing (CVPRW15)", "kevinlin311tw/caffe-cvprw15", [
        ("examples/cvprw15-cifar10/KevinNet_CIFAR10_48_deploy.prototxt",),
        ("examples/cvprw15-cifar10/train_CIFAR10_48.prototxt",),
        ("examples/cvprw15-cifar10/test_CIFAR10_48.prototxt",),
    ]),
    ("Intel Caffe", "intel/caffe", [
        ("models/intel_optimized_models/resnext_50/ResNeXt-50-deploy.prototxt",),
        ("models/intel_optimized_models/benchmark/mobilenet_v2/deploy.prototxt",),
        ("models/intel_optimized_models/benchmark/googlenet_v3/deploy.prototxt",),
        # test files: their data layer is TEST-only, so only TEST builds (as in Caffe)
        ("models/intel_optimized_models/yolo/yolov2_test.prototxt",
         {"data": [8, 3, 544, 544]}, ["TEST"]),
        ("models/intel_optimized_models/int8/resnet50_int8_acc.prototxt", {}, ["TEST"]),
        # a deploy net whose Reshapes are TEST-only: Caffe's TRAIN net would not wire
        ("examples/LRCN_activity_recognition/deploy_lstm.prototxt", {}, ["TEST"]),
        ("models/intel_optimized_models/dcgan/discriminator.prototxt",),
        ("models/intel_optimized_models/ssd/VGGNet/VOC0712/SSD_300x300/deploy.prototxt",),
        ("models/intel_optimized_models/faster-rcnn/pascal_voc/ZF/faster_rcnn_end2end/"
         "test.prototxt",),
        ("examples/cifar10/cifar10_full_sigmoid_train_test_bn.prototxt",),
        ("models/intel_optimized_models/dcgan/generator.prototxt",),
        ("models/intel_optimized_models/benchmark/ssd_mobilenet/deploy.prototxt",),
    ]),
    ("GeekLiB zoo", "GeekLiB/caffe-model", [
        ("prototxts/inception_bn/inception_bn_deploy.prototxt",),
        ("prototxts/alexnet/alexnet_scale_deploy.prototxt",),
        ("prototxts/inception_v4_train_test.prototxt",),
        ("prototxts/inception_resnet_v2_train_test.prototxt",),
        ("cls/resnet-v2/deploy_resnet269_v2.prototxt",),
    ]),
    ("Pelee", "Robert-JunWang/Pelee", [
        ("model/voc/deploy_merged.prototxt",),
        ("model/voc/train_merged.prototxt", {"data": [32, 3, 304, 304]}, ["TRAIN"]),
    ]),
    ("MobileNet 1/2", "farmingyard/caffe-mobilenet", [
        ("mobilenet_1by2_deploy.prototxt",),
    ]),
    # the third set: verification, retrieval, re-id, face and a few classics
    ("person re-id (DGD)", "Cysu/dgd_person_reid", [
        ("models/jstl/jstl_deploy.prototxt",),
        ("models/jstl/jstl_deploy_inference.prototxt",),
        ("models/jstl/jstl_trainval.prototxt",),
        ("models/dgd/cuhk03_trainval.prototxt",),
        ("models/exfeat_template.prototxt",),
    ]),
    ("LightCNN", "AlfredXiangWu/face_verification_experiment", [
        ("proto/LightenedCNN_A_deploy.prototxt",),
        ("proto/LightenedCNN_B_deploy.prototxt",),
        ("proto/LightenedCNN_C_deploy.prototxt",),
    ]),
    ("VGG-Face triplet", "ElaineBao/triplet-loss", [
        ("VGG_FACE_deploy.prototxt",),
        ("VGG_FACE_train.prototxt",),
    ]),
    ("deep retrieval (R-MAC)", "figitaki/deep-retrieval", [
        ("deploy_resnet101.prototxt",),
        ("deploy_resnet101_normpython.prototxt",),
    ]),
    ("ShuffleNet", "farmingyard/ShuffleNet", [
        ("shufflenet_1x_g3_deploy.prototxt",),
        ("shufflenet_v2_1x_deploy.prototxt",),
    ]),
    # richzhang/colorization's models/ folder, from a fork of it (the original's snapshot
    # is too large to mirror here)
    ("colorization", "tonyyangToBeNo1/colorization_flow_caffe", [
        ("models/colorization_deploy_v2.prototxt",),
        ("models/colorization_deploy_v1.prototxt",),
        ("models/colorization_train_val_v2.prototxt",),
        ("models/alexnet_deploy_lab.prototxt",),
    ]),
    # the fourth set: detection, segmentation, flow and pruning nets of forks' papers
    ("channel pruning", "yihui-he/channel-pruning", [
        ("temp/vgg.prototxt",),
        ("temp/channel_pruning.prototxt",),
        ("temp/resnet-50-cp.prototxt",),
    ]),
    ("S3FD", "bonseyes/SFD", [
        ("models/Original/deploy.prototxt",),
        ("models/SFD-640x640-3CH-MobileNetV1-CaffeSSD-Float32-Dense/deploy.prototxt",),
        ("models/SFD-320x320-3CH-MobileNetV2-mod1-CaffeSSD-Float32-Dense/deploy.prototxt",),
        ("scripts/train/FaceBoxes/faceboxes_deploy.prototxt",),
    ]),
    ("RefineDet (ResNet-101)", _REFINEDET_R101, [
        (_R101 + "deploy.prototxt",),
    ]),
    ("RefineDet (VoVNet)", _VOVNET_REFINEDET, [
        (_VOV + "deploy.prototxt",),
        (_VOV + "test.prototxt", {}, ["TEST"]),
    ]),
    ("FlowNet 2.0", "cdancette/flownet-tools", [
        ("models/FlowNet2/FlowNet2_deploy.prototxt.template",),
        ("models/FlowNet2-s-warp-flow-loss/deploy.prototxt",),
    ]),
    ("DeepLab v1", "martinkersner/train-DeepLab", [
        ("DeepLab-LargeFOV/train.prototxt", {}, ["TRAIN"]),
        # test files: their data layer is TEST-only, so only TEST builds (as in Caffe)
        ("DeepLab-LargeFOV/test.prototxt", {}, ["TEST"]),
        ("DeepLab-LargeFOV-Semi-Bbox-Fixed/test.prototxt", {}, ["TEST"]),
    ]),
    ("Fast R-CNN", "rbgirshick/fast-rcnn", [
        # the forks section reads five others with the fork's schema
        ("models/VGG16/compressed/test.prototxt",),
        ("models/CaffeNet/no_bbox_reg/test.prototxt",),
        ("models/VGG16/no_bbox_reg/train.prototxt",),
    ]),
]

# What a failure above was found to be, when it is not caffe2torch's (checked by hand).
_WINDOW_FIELDS = (
    "V0 `data` layers carrying window_data's det_* fields: Caffe's upgrade_net_proto_text "
    "drops them with the same warnings and exits 1 too; the net builds")
_PIECE = (
    "a piece of a bigger net, not a net: its first layer reads a blob no layer of the file "
    "makes, which Caffe refuses too; the error says to paste it into a net or declare the "
    "blob as an input")
_CAFFE_PRO = ("yihui-he/caffe-pro's ImageData fields (new_dim, bicubic); the message names "
              "the fork, and the forks section reads them with its schema")
_TIES = ("on filler weights the face scores of its 34k priors are near-equal, so NMS and "
         "keep_top_k choose among ties: PyTorch alone moves detection_out by 0.5 when the "
         "input moves by 1e-6 of itself; onnxruntime's float rounding does the same")
_ARM = ("RefineDet's DetectionOutput (arm_conf, arm_loc) builds; ONNX export refuses it "
        "by name")
_SEG_FILLED = "the template's ${NUM_LABELS} is filled in with 21"
_SEG_TEST = ("DeepLab v1's test net also needs MAT_WRITE and DENSE_CRF, not implemented; "
             "the template's ${NUM_LABELS} is filled in with 21")
ZOO_NOTES = {
    "ssdlite/voc/deploy.prototxt":
        "on filler weights the Sigmoid confidences saturate at 1.0, so NMS and keep_top_k "
        "pick among ties by box overlap; PyTorch alone moves detection_out by 1.0 when "
        "the input moves by 1e-4 of itself, as onnxruntime's float rounding does; every "
        "other output agrees within 1e-4",
    # the second set of zoo repositories
    "examples/cvprw15-cifar10/train_CIFAR10_48.prototxt": _WINDOW_FIELDS,
    "examples/cvprw15-cifar10/test_CIFAR10_48.prototxt": _WINDOW_FIELDS,
    "prototxt/scaled_cosine_softmax.prototxt": _PIECE,
    "prototxt/normalized_Euclidean_triplet.prototxt": _PIECE,
    "prototxt/GNAP.prototxt": _PIECE,
    "models/intel_optimized_models/int8/resnet50_int8_acc.prototxt":
        "intel/caffe's own transform field; the message says to read the net with "
        "intel's caffe.proto and build Data with a plug-in, or delete the field",
    "models/intel_optimized_models/yolo/yolov2_test.prototxt":
        "intel/caffe's YOLOv2 loss, not implemented",
    # the third set
    "proto/LightenedCNN_B_deploy.prototxt":
        "a deploy net that keeps its TEST Accuracy on a `label` blob it never declares: "
        "Caffe refuses it too; delete the layer",
    "models/jstl/jstl_trainval.prototxt": "Cysu/caffe's own Data fields (crop_height, "
        "crop_width, shuffle_pool_size); the forks section reads them with its schema",
    "models/dgd/cuhk03_trainval.prototxt": "Cysu/caffe's own Data fields, as above",
    "models/exfeat_template.prototxt": "Cysu/caffe's own Data fields, as above",
    # the fourth set
    "temp/vgg.prototxt": _CAFFE_PRO,
    "temp/channel_pruning.prototxt": _CAFFE_PRO,
    "temp/resnet-50-cp.prototxt": _CAFFE_PRO,
    "models/Original/deploy.prototxt": _TIES,
    _R101 + "deploy.prototxt": _ARM,
    _VOV + "deploy.prototxt": _ARM,
    _VOV + "test.prototxt": "weiliu89's DetectionEvaluate evaluating in pixels "
        "(name_size_file), which caffe2torch refuses with the hint to remove it",
    "models/FlowNet2-s-warp-flow-loss/deploy.prototxt": "committed unfilled: the "
        "template's $TARGET_HEIGHT$; the error names it and says to fill it in",
    "DeepLab-LargeFOV/train.prototxt": _SEG_FILLED,
    "DeepLab-LargeFOV/test.prototxt": _SEG_TEST,
    "DeepLab-LargeFOV-Semi-Bbox-Fixed/test.prototxt": _SEG_TEST,
}


def _note(npath: str) -> str:
    return f" ({ZOO_NOTES[npath]})" if npath in ZOO_NOTES else ""


def git_dir(mirrors: str, repo: str) -> str:
    base = os.path.join(mirrors, repo.replace("/", "+"), "repo")
    for cand in (base, os.path.join(base, ".git")):
        if os.path.isdir(os.path.join(cand, "objects")):
            return cand
    raise SystemExit(f"no mirror of {repo} under {mirrors} (expected {base})")


def extract(mirrors: str, repo: str, path: str, into: str) -> str:
    repo, _, ref = repo.partition("@")
    data = subprocess.run(["git", "-C", git_dir(mirrors, repo), "show",
                           f"{ref or 'HEAD'}:{path}"], check=True, capture_output=True).stdout
    if path.endswith(".template") or path in SCRIPT_FILLED:
        data = fill_template(data)
    out = os.path.join(into, repo.replace("/", "+"), path)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "wb") as f:
        f.write(data)
    return out


# Nets their repositories fill in with a script before Caffe reads them, and what goes in:
# FlowNet 2.0's scripts/run-flownet.py puts $NAME$ fields for an image pair (512x384 here,
# a multiple of its divisor 64, so the adapted size is the same); DeepLab's run scripts
# put ${NAME} fields (PASCAL VOC 2012: 21 labels; the paths stay as they are)
TEMPLATE_VALUES = {"$TARGET_WIDTH$": "512", "$TARGET_HEIGHT$": "384", "$ADAPTED_WIDTH$": "512",
                   "$ADAPTED_HEIGHT$": "384", "$SCALE_WIDTH$": "1.0", "$SCALE_HEIGHT$": "1.0",
                   "${NUM_LABELS}": "21", "${EXP}": "voc12"}
SCRIPT_FILLED = {
    "DeepLab-LargeFOV/train.prototxt",
    "DeepLab-LargeFOV/test.prototxt",
    "DeepLab-LargeFOV-Semi-Bbox-Fixed/train.prototxt",
    "DeepLab-LargeFOV-Semi-Bbox-Fixed/test.prototxt",
}


def fill_template(data: bytes) -> bytes:
    """A net template with its fields replaced as its repository's script replaces them; a
    field not known stays as it is (and the read reports it)."""
    for key, value in TEMPLATE_VALUES.items():
        data = data.replace(key.encode(), value.encode())
    return data


@dataclass
class Row:
    label: str
    repo: str
    files: int = 0
    parse_p: int = 0
    lint_p: int = 0
    build_p: int = 0
    plugin_p: int = 0  # failed on an unregistered type with the plug-in hint
    parse: int = 0
    upgrade: int = 0
    info: int = 0
    lint: int = 0
    build: int = 0
    reasons: list[str] = field(default_factory=list)


_MISSING = re.compile(r"top\(s\) still without a shape: ([\w/, .-]+)$")


def _image_size(tp: Any) -> tuple[int, int]:
    """(height, width) of a data layer's images: crop_size; else the size an SSD-style
    ``resize_param`` resizes to; else 224. (A fork's own fields, e.g. Cysu/caffe's
    crop_height, are kept aside by the reader and not seen here.)"""
    if tp.crop_size:
        return int(tp.crop_size), int(tp.crop_size)
    if tp.HasField("resize_param") and tp.resize_param.height:
        return int(tp.resize_param.height), int(tp.resize_param.width or tp.resize_param.height)
    return 224, 224


def _guess_shapes(net_param, tops: list[str]) -> dict[str, list[int]]:
    """Shapes for data tops a build asked for: images (batch, 3, height, width) with the size
    :func:`_image_size` gives, labels (batch)."""
    out: dict[str, list[int]] = {}
    for layer in net_param.layer:
        for k, top in enumerate(layer.top):
            if top not in tops:
                continue
            batch = 1
            for p in ("data_param", "image_data_param", "window_data_param", "hdf5_data_param"):
                if layer.HasField(p) and getattr(layer, p).batch_size:
                    batch = int(getattr(layer, p).batch_size)
            height, width = _image_size(layer.transform_param)
            out[top] = [batch, 3, height, width] if k == 0 else [batch]
    for top in tops:
        out.setdefault(top, [1])
    return out


def build_all(path: str, proto: str | None,
              given: dict[str, list[int]] | None = None,
              phases: list[str] | None = None,
              found: dict[str, list[int]] | None = None) -> tuple[bool, str]:
    """Build every declared phase (or ``phases``); (ok, why not). A type nobody registered
    counts as ok when the error names it and gives the plug-in hint ("plugin: TYPE").
    ``found`` receives the input shapes the builds needed."""
    import caffe2torch as c2t
    from caffe2torch.errors import CaffeError
    from caffe2torch.io.text import read_net
    from caffe2torch.ir.netstate import declared_phases

    try:
        net_param = read_net(path, proto)
    except CaffeError as e:  # a file Caffe rejects too: the message is the finding
        where = f"{e.line}:{e.col}: " if e.line else ""
        return False, f"read: {where}{e.message}"[:160]
    for phase in phases or declared_phases(net_param.layer):
        shapes: dict[str, list[int]] = dict(given or {})
        for _ in range(4):
            try:
                c2t.load_net(path, phase=phase, input_shapes=shapes or None, proto=proto)
                if found is not None:
                    found.update(shapes)
                break
            except CaffeError as e:
                m = _MISSING.search(e.message)
                if m:
                    shapes.update(_guess_shapes(net_param, [t.strip() for t in
                                                            m.group(1).split(",")]))
                    continue
                hint = e.hint or ""
                if "unknown layer type" in e.message and "register_layer" in hint:
                    t = re.search(r'unknown layer type "([^"]+)"', e.message)
                    return False, f"plugin: {t.group(1) if t else '?'}"
                if "Python layers are refused" in e.message:
                    return False, "plugin: Python (refused: user code; --allow-python-layers)"
                return False, f"{phase}: {e.message}"[:160]
    return True, ""


def survey(mirrors: str, only: list[str] | None = None) -> list[Row]:
    from caffe2torch.cli.main import main as cli
    from caffe2torch.io.text import read_net, read_text, upgrade_text
    from caffe2torch.lint.context import Options
    from caffe2torch.lint.engine import lint_file

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, prepo, ppath, nets in SURVEY:
            if only and not ({r.partition("@")[0] for r in (prepo, *(n[0] for n in nets))}
                             & set(only)):
                continue
            row = Row(label, prepo)
            proto = extract(mirrors, prepo, ppath, os.path.join(tmp, "protos"))
            for repo, npath, *given in nets:
                shapes = given[0] if given else None
                phases: list[str] | None = given[1] if len(given) > 1 else None
                path = extract(mirrors, repo, npath, tmp)
                name = os.path.basename(npath)
                row.files += 1
                try:
                    read_net(path, proto)
                    row.parse_p += 1
                except Exception as e:  # a survey records every failure
                    row.reasons.append(f"{name}: parse with proto: {e}"[:200])
                try:
                    lint_file(path, Options(proto=proto))
                    row.lint_p += 1
                except Exception as e:
                    row.reasons.append(f"{name}: lint with proto crashed: {e!r}"[:200])
                try:
                    ok, why = build_all(path, proto, shapes, phases)
                except Exception as e:
                    ok, why = False, f"crash {e!r}"[:160]
                if ok:
                    row.build_p += 1
                elif why.startswith("plugin: "):
                    row.plugin_p += 1
                    row.reasons.append(f"{name}: unregistered type {why[8:]} (plug-in hint)")
                else:
                    row.reasons.append(f"{name}: build with proto: {why}")
                # without the fork's schema
                try:
                    read_net(path)
                    row.parse += 1
                    upgrade_text(read_text(path), path)
                    row.upgrade += 1
                except Exception as e:
                    row.reasons.append(f"{name}: read without proto: {e}"[:200])
                with contextlib.redirect_stdout(io.StringIO()), \
                        contextlib.redirect_stderr(io.StringIO()):
                    # exit 1: the table is printed but the net does not build (the
                    # build column says why); 2 would be a file info cannot read
                    if cli(["info", path]) in (0, 1):
                        row.info += 1
                    try:
                        lint_file(path)
                        row.lint += 1
                    except Exception as e:
                        row.reasons.append(f"{name}: lint crashed: {e!r}"[:200])
                try:
                    ok2, _ = build_all(path, None, shapes, phases)
                except Exception:
                    ok2 = False
                row.build += ok2
            rows.append(row)
    return rows


@dataclass
class ZooRow:
    label: str
    repo: str
    files: int = 0
    info: int = 0
    lint: int = 0
    old: int = 0  # V0/V1 files, which get `upgrade`
    upgrade: int = 0
    build: int = 0
    plugin: int = 0
    deploy: int = 0  # deploy nets that build: the ones `export --verify` is tried on
    export: int = 0
    unit_bn: int = 0  # exports verified on unit BatchNorm statistics (fillers overflow)
    reasons: list[str] = field(default_factory=list)


_OLD_FORMAT = re.compile(r"^\s*layers\s*\{", re.M)


def _cli(argv: list[str], strip: str = "") -> tuple[int, str]:
    """Run one CLI verb as a user would; (exit code, its last message lines, with the
    prefix ``strip`` taken off the paths)."""
    import torch

    from caffe2torch.cli.main import main as cli

    torch.manual_seed(0)  # the fillers draw from torch's generator: one table per run
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli(argv)
        except BaseException as e:  # a traceback is a bug the survey must show
            return 99, f"crash {e!r}"
    lines = [ln for ln in (err.getvalue() + out.getvalue()).splitlines() if ln.strip()]
    failed = [ln for ln in lines if "FAILED" in ln or "error:" in ln]
    text = " / ".join(ln.strip() for ln in (failed or lines)[-2:])
    return rc, (text.replace(strip, "") if strip else text)[:220]


def _is_deploy(path: str) -> bool:
    """No data layer and no loss: what export's deploy view leaves as is."""
    from caffe2torch.io.text import read_net

    types = [lp.type for lp in read_net(path).layer]
    return not any(t.endswith("Data") or "Loss" in t or t == "Accuracy" for t in types)


def _has_batchnorm(path: str) -> bool:
    """A BatchNorm or a fork's BN: filler weights give it zero statistics."""
    from caffe2torch.io.text import read_net

    return any(lp.type in ("BatchNorm", "BN") for lp in read_net(path).layer)


def survey_zoo(mirrors: str, export: bool, only: list[str] | None = None) -> list[ZooRow]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, repo, nets in ZOO:
            if only and repo.partition("@")[0] not in only:
                continue
            row = ZooRow(label, repo)
            for npath, *given in nets:
                shapes: dict[str, list[int]] = dict(given[0]) if given else {}
                phases: list[str] | None = given[1] if len(given) > 1 else None
                path = extract(mirrors, repo, npath, tmp)
                name = npath
                row.files += 1
                with open(path, "rb") as f:
                    if f.read(40).startswith(b"version https://git-lfs"):
                        row.reasons.append(f"{name}: a Git LFS pointer, not a prototxt")
                        continue
                try:  # first, so that info and export get the shapes a build needed
                    ok, why = build_all(path, None, shapes, phases, found=shapes)
                except Exception as e:
                    ok, why = False, f"crash {e!r}"[:160]
                shape_args = [a for blob, dims in shapes.items() for a in
                              ("--input-shape", f"{blob}={','.join(map(str, dims))}")]
                phase_args = ["--phase", phases[0]] if phases else []
                rc, msg = _cli(["info", path, *phase_args, *shape_args], tmp + os.sep)
                # exit 1 on a net that does not build: the table is printed with the
                # reason, which the build column records
                if rc == 0 or (rc == 1 and not ok and not why.startswith("read: ")):
                    row.info += 1
                else:
                    row.reasons.append(f"{name}: info exit {rc}: {msg}")
                rc, msg = _cli(["lint", "--format", "concise", path], tmp + os.sep)
                if rc in (0, 1):
                    row.lint += 1
                else:
                    row.reasons.append(f"{name}: lint exit {rc}: {msg}")
                if _OLD_FORMAT.search(read_text_file(path)):
                    row.old += 1
                    rc, msg = _cli(["upgrade", path, path + ".v2"], tmp + os.sep)
                    if rc == 0:
                        row.upgrade += 1
                    else:
                        row.reasons.append(f"{name}: upgrade exit {rc}: {msg}" + _note(npath))
                if ok:
                    row.build += 1
                elif why.startswith("plugin: "):
                    row.plugin += 1
                    row.reasons.append(f"{name}: unregistered type {why[8:]} (plug-in hint)"
                                       + _note(npath))
                    continue
                else:
                    row.reasons.append(f"{name}: build: {why}" + _note(npath))
                    continue
                if not (export and _is_deploy(path)):
                    continue
                row.deploy += 1
                rc, msg = _cli(["export", path, "-o", path + ".onnx", "--verify",
                                *shape_args], tmp + os.sep)
                if rc != 0 and ("no finite value" in msg or _has_batchnorm(path)):
                    # the fillers' zero BatchNorm statistics divide by sqrt(eps) at each
                    # BatchNorm (as in Caffe) until float32 overflows (every value, or
                    # some: inf boxes that NMS then compares): check the export on
                    # weights with unit statistics instead
                    weights = unit_batchnorm_weights(path, shapes, phases)
                    rc, msg = _cli(["export", path, "-o", path + ".onnx", "--verify",
                                    "--weights", weights, *shape_args], tmp + os.sep)
                    if rc == 0:
                        row.unit_bn += 1
                        row.reasons.append(f"{name}: export verified on unit BatchNorm "
                                           "statistics (see above)")
                if rc == 0:
                    row.export += 1
                else:
                    row.reasons.append(f"{name}: export --verify exit {rc}: {msg}" + _note(npath))
            rows.append(row)
    return rows


def unit_batchnorm_weights(path: str, shapes: dict[str, list[int]],
                           phases: list[str] | None) -> str:
    """A caffemodel of the net's filler weights with every BatchNorm's statistics set to
    mean 0, variance 1 and scale factor 1 (fillers leave them all 0), and every fork BN's
    variance set to 1; its path."""
    import torch

    import caffe2torch as c2t
    from caffe2torch.io.text import read_net

    types = {lp.name: lp.type for lp in read_net(path).layer}
    net = c2t.load_net(path, phase=(phases or ["TEST"])[0], input_shapes=shapes or None)
    with torch.no_grad():
        for name, blobs in net.params.items():
            if types.get(name) == "BatchNorm":
                blobs[1].fill_(1.0)
                blobs[2].fill_(1.0)
            elif types.get(name) == "BN" and len(blobs) == 4:  # the forks' (slope, bias,
                blobs[3].fill_(1.0)  # mean, variance)
    out = path + ".unit_bn.caffemodel"
    net.save_caffemodel(out)
    return out


def read_text_file(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def render_zoo(rows: list[ZooRow], seconds: float, export: bool) -> str:
    out = [
        "",
        "# Nets from model zoos and papers' code",
        "",
        "The same tool, section two: nets users commonly bring (model zoos, papers' code), "
        "none of them in the shared corpus, read as a user reads them, without a fork "
        "schema. Each file goes through `caffe2torch info` (exit 0), `lint` (no crash: "
        "exit 0 or 1), `upgrade` when it is V0/V1 (*old*), a build of every phase it "
        "declares (`load_net`), and, for deploy nets that build (no data or loss layer), "
        "`export --verify` (ONNX, checked against onnxruntime"
        + ("" if export else "; skipped: onnxruntime is not installed") + "). Without "
        "trained weights the check runs on the fillers' values; where those overflow "
        "(BatchNorm's statistics are filled with 0, so each BatchNorm multiplies by "
        "1/sqrt(eps), as in Caffe, until float32 gives inf and NaN), it runs on the same "
        "weights with every BatchNorm's variance and scale factor set to 1 (noted below).",
        "",
        "| repository | files | info | lint | old | upgrade | build | plug-in "
        "| deploy | export |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = ("files", "info", "lint", "old", "upgrade", "build", "plugin", "deploy", "export")
    tot = ZooRow("total", "")
    for r in rows:
        out.append(f"| {r.repo} | " + " | ".join(str(getattr(r, k)) for k in keys) + " |")
        for k in keys:
            setattr(tot, k, getattr(tot, k) + getattr(r, k))
    out.append(f"| **total** ({len(rows)} repositories) | "
               + " | ".join(str(getattr(tot, k)) for k in keys) + " |")
    out += ["", "## Reasons", ""]
    for r in rows:
        for why in r.reasons:
            out.append(f"- {r.label}: {why}".replace("\n", " "))
    out += ["", f"({len(rows)} repositories, {tot.files} files, {seconds:.0f} s.)", ""]
    return "\n".join(out)


def render(rows: list[Row], seconds: float) -> str:
    head = [
        "# Nets of Caffe forks",
        "",
        "Generated by `python tools/fork_survey.py --mirrors DIR --out docs/forks.md` from "
        "local mirrors of the repositories below (none of them is in the shared corpus; "
        "their files are not copied here). Each net is read with the fork's own "
        "`src/caffe/proto/caffe.proto` (`--proto`) and without it; *build* builds every "
        "phase the net declares, or the one phase a train or test file's data layer serves "
        "(as Caffe builds it), and data tops a build cannot size get (batch, 3, crop, crop) "
        "and (batch). *plug-in* counts nets that stop on a layer type nobody registered, "
        "with its name and the hint to register it.",
        "",
        "| fork | proto from | files | parse --proto | lint --proto | build --proto "
        "| plug-in | parse | upgrade | info | lint | build |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        head.append(f"| {r.label} | {r.repo} | {r.files} | {r.parse_p} | {r.lint_p} | "
                    f"{r.build_p} | {r.plugin_p} | {r.parse} | {r.upgrade} | {r.info} | "
                    f"{r.lint} | {r.build} |")
    tot = Row("total", "")
    for r in rows:
        for k in ("files", "parse_p", "lint_p", "build_p", "plugin_p", "parse", "upgrade",
                  "info", "lint", "build"):
            setattr(tot, k, getattr(tot, k) + getattr(r, k))
    head.append(f"| **total** | {len(rows)} forks | {tot.files} | {tot.parse_p} | "
                f"{tot.lint_p} | {tot.build_p} | {tot.plugin_p} | {tot.parse} | "
                f"{tot.upgrade} | {tot.info} | {tot.lint} | {tot.build} |")
    head += ["", "## Reasons", ""]
    for r in rows:
        for why in r.reasons:
            head.append(f"- {r.label}: {why}".replace("\n", " "))
    head += ["", f"({len(rows)} forks, {tot.files} files, {seconds:.0f} s.)", ""]
    return "\n".join(head)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mirrors", required=True, help="folder of owner+name/repo git mirrors")
    p.add_argument("--out", help="write the markdown table here (default: stdout)")
    p.add_argument("--only", choices=("forks", "zoo"),
                   help="run one section only (default: both)")
    p.add_argument("--repo", action="append", metavar="OWNER/NAME",
                   help="survey only these repositories (repeatable; a fork row is "
                   "picked by its nets' repositories)")
    args = p.parse_args(argv)
    text = ""
    if args.only != "zoo":
        start = time.perf_counter()
        rows = survey(args.mirrors, args.repo)
        text += render(rows, time.perf_counter() - start)
    if args.only != "forks":
        start = time.perf_counter()
        export = importlib.util.find_spec("onnxruntime") is not None
        zoo = survey_zoo(args.mirrors, export, args.repo)
        text += render_zoo(zoo, time.perf_counter() - start, export)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
