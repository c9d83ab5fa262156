"""BVLC Caffe's own layer types, one module per family."""
