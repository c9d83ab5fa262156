"""IR + layer registry -> torch.fx GraphModule, wrapped in a pycaffe-like CaffeNet."""

from caffe2torch.graph.builder import build_net
from caffe2torch.graph.load import load_net
from caffe2torch.graph.net import CaffeLayers, CaffeNet, LearnableParam
from caffe2torch.graph.weights import CopyReport

__all__ = ["CaffeLayers", "CaffeNet", "CopyReport", "LearnableParam", "build_net", "load_net"]
