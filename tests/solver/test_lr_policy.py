"""Learning-rate policies as SGDSolver::GetLearningRate computes them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from google.protobuf import text_format

from caffe2torch.errors import SolverError
from caffe2torch.proto import caffe_pb2
from caffe2torch.solver.lr_policy import LearningRatePolicy
from tests.conftest import GOLDEN, need_shared


def policy(text: str) -> LearningRatePolicy:
    msg = text_format.Parse(text, caffe_pb2.SolverParameter())
    return LearningRatePolicy.from_proto(msg, path="solver.prototxt")


def close(values: list[float], expected: list[float]) -> None:
    np.testing.assert_allclose(values, np.float32(expected), rtol=1e-6)


def test_fixed() -> None:
    close(policy('lr_policy: "fixed" base_lr: 0.1').rates([0, 5, 1000]), [0.1] * 3)


def test_step_and_current_step() -> None:
    p = policy('lr_policy: "step" base_lr: 1 gamma: 0.1 stepsize: 3')
    close(p.rates(range(7)), [1, 1, 1, 0.1, 0.1, 0.1, 0.01])
    assert p.current_step == 2


def test_exp_inv_poly_sigmoid() -> None:
    close(policy('lr_policy: "exp" base_lr: 2 gamma: 0.5').rates([0, 3]), [2, 0.25])
    close(policy('lr_policy: "inv" base_lr: 1 gamma: 1 power: 2').rates([0, 1, 3]),
          [1, 0.25, 1 / 16])
    close(policy('lr_policy: "poly" base_lr: 1 power: 2 max_iter: 10').rates([0, 5, 10]),
          [1, 0.25, 0])
    s = policy('lr_policy: "sigmoid" base_lr: 1 gamma: 0.5 stepsize: 4')
    close(s.rates([0, 4, 8]), [1 / (1 + math.exp(2)), 0.5, 1 / (1 + math.exp(-2))])


def test_multistep_advances_one_step_per_call_and_resumes() -> None:
    text = 'lr_policy: "multistep" base_lr: 1 gamma: 0.5 stepvalue: 2 stepvalue: 4'
    p = policy(text)
    close(p.rates(range(6)), [1, 1, 0.5, 0.5, 0.25, 0.25])
    assert p.current_step == 2
    # a restored solver carries current_step from the snapshot
    q = policy(text)
    q.current_step = 1
    close(q.rates([3, 4]), [0.5, 0.25])
    # Caffe moves at most one step per call: jumping past two stepvalues takes two calls
    r = policy(text)
    close(r.rates([10, 10, 10]), [0.5, 0.25, 0.25])


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('lr_policy: "step" base_lr: 1 gamma: 0.1', "stepsize"),
        ('lr_policy: "step" base_lr: 1 stepsize: 10', "gamma"),
        ('lr_policy: "exp" base_lr: 1', "gamma"),
        ('lr_policy: "inv" base_lr: 1 gamma: 0.1', "power"),
        ('lr_policy: "multistep" base_lr: 1 gamma: 0.1', "stepvalue"),
        ('lr_policy: "poly" base_lr: 1 power: 1', "max_iter"),
        ('lr_policy: "sigmoid" base_lr: 1 gamma: 0.1', "stepsize"),
    ],
)
def test_missing_field_is_named(text: str, field: str) -> None:
    with pytest.raises(SolverError, match=f"needs {field}") as e:
        policy(text)
    assert e.value.path == "solver.prototxt"


def test_unknown_policy_and_bad_values() -> None:
    with pytest.raises(SolverError, match="unknown lr_policy 'stpe'") as e:
        policy('lr_policy: "stpe" base_lr: 1')
    assert "'step'" in (e.value.hint or "")
    with pytest.raises(SolverError, match="no lr_policy"):
        policy("base_lr: 1")
    with pytest.raises(SolverError, match="stepsize > 0"):
        policy('lr_policy: "step" base_lr: 1 gamma: 0.1 stepsize: 0')
    with pytest.raises(SolverError, match="gamma >= 0"):
        policy('lr_policy: "exp" base_lr: 1 gamma: -0.1')


def test_golden_rates_bit_exact() -> None:
    """Every golden trajectory's ``lr`` (the rate Caffe handed to its update) exactly."""
    root = need_shared(GOLDEN / "solver")
    cases = sorted(p for p in root.iterdir() if (p / "trajectory.npz").exists())
    assert cases
    for case in cases:
        msg = text_format.Parse((case / "solver.prototxt").read_text(),
                                caffe_pb2.SolverParameter())
        with np.load(case / "trajectory.npz") as z:
            expected = z["lr"]
        got = np.array(LearningRatePolicy.from_proto(msg).rates(range(len(expected))),
                       dtype=np.float32)
        np.testing.assert_array_equal(got, expected, err_msg=case.name)
