"""Benchmarks of caffe2torch (run on demand: ``python -m bench [--quick] [--only NAME]``)."""
