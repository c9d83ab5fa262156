"""The ``caffe2torch`` command line: one module per verb, dispatched by :mod:`.main`."""
