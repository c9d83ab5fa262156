"""Imports every module that registers built-in Caffe layer types."""

# ruff: noqa: F401  (each module is imported for its registrations)
import caffe2torch.layers.bvlc.blob_ops
import caffe2torch.layers.bvlc.inputs
import caffe2torch.layers.bvlc.losses
import caffe2torch.layers.bvlc.metric_losses
import caffe2torch.layers.bvlc.neuron
import caffe2torch.layers.bvlc.normalization
import caffe2torch.layers.bvlc.recurrent
import caffe2torch.layers.bvlc.vision
import caffe2torch.layers.forks.amsoftmax
import caffe2torch.layers.forks.detection
import caffe2torch.layers.forks.face
import caffe2torch.layers.forks.local
import caffe2torch.layers.forks.losses
import caffe2torch.layers.forks.mobile
import caffe2torch.layers.forks.normface
import caffe2torch.layers.forks.seg_accuracy
import caffe2torch.layers.forks.seg_data
import caffe2torch.layers.forks.segmentation
import caffe2torch.layers.forks.ssd
import caffe2torch.layers.forks.ssd_data
import caffe2torch.layers.forks.ssd_eval
import caffe2torch.layers.forks.ssd_loss
