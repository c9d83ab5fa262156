"""OpenMP wait policy chosen from the load before torch is loaded (caffe2torch.omp_wait)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from caffe2torch import omp_wait


def test_passive_only_when_oversubscribed() -> None:
    assert omp_wait.passive_wanted(5.0, 2)
    assert not omp_wait.passive_wanted(1.5, 2)
    assert not omp_wait.passive_wanted(5.0, 0)


@pytest.mark.parametrize("load, expected", [(9.0, "PASSIVE"), (0.5, None)])
def test_choose_sets_the_policy_from_the_load(monkeypatch: pytest.MonkeyPatch, load: float,
                                              expected: str | None) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    env: dict[str, str] = {}
    assert omp_wait.choose(env, modules=set()) == expected
    assert env.get("OMP_WAIT_POLICY") == expected


def test_choose_leaves_a_decided_policy_or_a_loaded_torch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (99.0, 99.0, 99.0))
    for env in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "1000"},
                {"CAFFE2TORCH_OMP_WAIT": "off"}):
        before = dict(env)
        assert omp_wait.choose(env, modules=set()) is None and env == before
    assert omp_wait.choose({}, modules={"torch"}) is None


def test_package_import_chooses_before_torch_loads() -> None:
    code = ("import os; os.getloadavg = lambda: (99.0, 99.0, 99.0)\n"
            "import caffe2torch, sys\n"
            "print(os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True)
    assert done.stdout.strip() == "PASSIVE"


def test_training_bounds_the_spin_unless_decided() -> None:
    env: dict[str, str] = {}
    assert omp_wait.bound_spin(env, modules=set()) == str(omp_wait.TRAINING_SPIN_COUNT)
    assert env == {"GOMP_SPINCOUNT": str(omp_wait.TRAINING_SPIN_COUNT)}
    for decided in ({"OMP_WAIT_POLICY": "PASSIVE"}, {"GOMP_SPINCOUNT": "5"},
                    {"CAFFE2TORCH_OMP_WAIT": "off"}):
        before = dict(decided)
        assert omp_wait.bound_spin(decided, modules=set()) is None and decided == before
    assert omp_wait.bound_spin({}, modules={"torch"}) is None


def test_train_verb_bounds_the_spin_before_torch_loads(tmp_path) -> None:
    code = ("import os, sys\n"
            "os.getloadavg = lambda: (0.0, 0.0, 0.0)\n"
            "from caffe2torch.cli.main import main\n"
            "main(['train', '--solver', 'missing.prototxt', '-q'])\n"
            "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "CAFFE2TORCH_OMP_WAIT")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=tmp_path, check=True)
    assert done.stdout.strip().splitlines()[-1] == f"{omp_wait.TRAINING_SPIN_COUNT} None"
