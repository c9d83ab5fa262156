"""What running a net needs around it, shared by the solver, the CLI and pycaffe: device
choice (runtime.devices), Caffe's glog-style log lines (runtime.glog), nets that draw
their own batches (runtime.feeding) and HDF5Output files (runtime.hdf5_output).

The modules are imported by their own names (``from caffe2torch.runtime.glog import
GlogWriter``): this package imports none of them, so a light one does not pull in torch.
"""
