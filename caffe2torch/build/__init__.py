"""IR + layer registry -> torch.fx GraphModule, wrapped in a pycaffe-like CaffeNet."""

from caffe2torch.build.builder import build_net
from caffe2torch.build.net import CaffeLayers, CaffeNet, LearnableParam
from caffe2torch.build.weights import CopyReport

__all__ = ["CaffeLayers", "CaffeNet", "CopyReport", "LearnableParam", "build_net"]
