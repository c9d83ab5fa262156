"""caffe2torch: Caffe nets, weights and solvers in PyTorch with Caffe's exact numerics."""

__version__ = "0.1.0"
