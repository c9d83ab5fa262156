"""Property tests: any text, any token soup that looks like a prototxt, any bytes given as
a binary file -> a result or a CaffeError (with the file's path), nothing else."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import caffe2torch as c2t
from caffe2torch.errors import CaffeError
from caffe2torch.io import read_binaryproto, read_caffemodel_arrays, read_solverstate

FIELDS = ["name", "type", "bottom", "top", "layer", "layers", "input", "input_dim",
          "input_shape", "dim", "convolution_param", "num_output", "kernel_size", "stride",
          "pad", "pooling_param", "pool", "include", "phase", "param", "lr_mult", "base_lr",
          "net", "solver_type", "type", "inner_product_param", "axis", "blobs_lr",
          "reshape_param", "shape", "slice_point", "concat_param", "eltwise_param", "coeff"]
VALUES = ['"ReLU"', '"Convolution"', '"Pooling"', '"data"', '"x"', "CONVOLUTION", "MAX",
          "TRAIN", "TEST", "0", "1", "-1", "3", "2147483648", "1e9", "nan", "-0.5", "true",
          "'q'", '"\\x00"']
PUNCT = ["{", "}", ":", "<", ">", "[", "]", ",", "#", "\n", " "]

tokens = st.lists(st.one_of(st.sampled_from(FIELDS), st.sampled_from(VALUES),
                            st.sampled_from(PUNCT)), max_size=80).map(" ".join)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def _file(data: bytes, suffix: str) -> Path:
    f = tempfile.NamedTemporaryFile(suffix=suffix, delete=False)  # noqa: SIM115
    with f:
        f.write(data)
    return Path(f.name)


def _net_entry_points(text: str) -> None:
    path = _file(text.encode("utf-8", "surrogatepass"), ".prototxt")
    try:
        for call in (c2t.read_net, c2t.read_solver, c2t.lint):
            try:
                call(path)
            except CaffeError as e:
                assert e.path == str(path), e
        with contextlib.suppress(CaffeError):
            c2t.upgrade_text(text)
        try:
            net = c2t.read_net(path)
        except CaffeError:
            return
        for phase in ("TRAIN", "TEST"):
            with contextlib.suppress(CaffeError):
                c2t.load_net(net, phase=phase)
    finally:
        path.unlink()


@SETTINGS
@given(tokens)
def test_token_soup(text: str) -> None:
    _net_entry_points(text)


@SETTINGS
@given(st.text(max_size=300))
def test_any_text(text: str) -> None:
    _net_entry_points(text)


@SETTINGS
@given(st.binary(max_size=400))
def test_any_bytes_as_binary_files(data: bytes) -> None:
    for suffix, read in ((".caffemodel", read_caffemodel_arrays),
                         (".binaryproto", read_binaryproto),
                         (".solverstate", read_solverstate)):
        path = _file(data, suffix)
        try:
            read(path)
        except CaffeError as e:
            assert e.path == str(path)
        finally:
            path.unlink()
