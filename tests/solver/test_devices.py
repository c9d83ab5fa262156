"""Device choice with ``-gpu``, with CUDA's presence and device count faked: one id, a
list or ``all`` (several GPUs start one process each under torch.distributed.run), the
rank's GPU under torchrun, and the refusals."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from caffe2torch.cli import train
from caffe2torch.cli.main import main
from caffe2torch.errors import SolverError
from caffe2torch.proto import caffe_pb2
from caffe2torch.runtime import devices
from caffe2torch.runtime.devices import resolve_device
from caffe2torch.runtime.glog import GlogWriter
from caffe2torch.solver import distributed as ddp


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch):
    def fake(count: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    return fake


@pytest.mark.parametrize(("flag", "ids"), [(None, None), ("1", [1]), ("0,2", [0, 2]),
                                           ("all", []), (" 3 , 1", [3, 1])])
def test_gpu_flag(flag: str | None, ids: list[int] | None) -> None:
    assert devices.gpu_ids(flag) == ids


@pytest.mark.parametrize("flag", ["x", "-1", "all,0", ","])
def test_bad_gpu_flag(flag: str) -> None:
    with pytest.raises(ValueError, match="expected a device id"):
        devices.gpu_ids(flag)


def test_device_flag_takes_the_first() -> None:
    assert devices.device_flag("1") == "cuda:1"
    assert devices.device_flag("2,0") == "cuda:2"
    assert devices.device_flag("all") == "cuda:0"


def test_resolve_device_picks_the_named_gpu(gpus) -> None:
    gpus(2)
    out = io.StringIO()
    device = resolve_device(caffe_pb2.SolverParameter(), "cuda:1", GlogWriter(out))
    assert device == torch.device("cuda", 1)
    assert "Use GPU with device ID 1" in out.getvalue()
    with pytest.raises(SolverError, match=r"GPU 2 does not exist \(2 visible\)"):
        resolve_device(caffe_pb2.SolverParameter(), "cuda:2", GlogWriter(None))
    # without -gpu, the solver's own solver_mode: GPU and device_id
    param = caffe_pb2.SolverParameter(solver_mode=caffe_pb2.SolverParameter.GPU, device_id=1)
    assert resolve_device(param, None, GlogWriter(None)) == torch.device("cuda", 1)


def test_without_cuda_a_gpu_request_falls_back_to_the_cpu(gpus) -> None:
    gpus(0)
    out = io.StringIO()
    assert resolve_device(caffe_pb2.SolverParameter(), "cuda:1",
                          GlogWriter(out)) == torch.device("cpu")
    assert "CUDA is not available" in out.getvalue()
    assert ddp.processes_for([]) == 1 and ddp.processes_for([0, 1]) == 1


def test_process_count(gpus) -> None:
    gpus(4)
    assert ddp.processes_for(None) == 1
    assert ddp.processes_for([1]) == 1
    assert ddp.processes_for([0, 2]) == 2
    assert ddp.processes_for([]) == 4


def test_rank_device(gpus) -> None:
    gpus(3)
    assert ddp.rank_device_request(None, 1) is None
    assert ddp.rank_device_request([], 2) == "cuda:2"
    assert ddp.rank_device_request([2, 0], 1) == "cuda:0"
    with pytest.raises(SolverError, match="process 2 has no GPU"):
        ddp.rank_device_request([2, 0], 2)


@pytest.fixture
def case(tiny_case) -> Path:
    return tiny_case(batch=4, max_iter=2)


@pytest.mark.parametrize(("flag", "nproc"), [("all", 3), ("0,1", 2)])
def test_several_gpus_start_one_process_each(case: Path, gpus, monkeypatch, flag: str,
                                             nproc: int) -> None:
    gpus(3)
    calls = []
    monkeypatch.setattr(ddp, "relaunch", lambda argv, n: calls.append((argv, n)) or 0)
    argv = ["train", "-solver", "solver.prototxt", "-gpu", flag, "--amp"]
    assert main(argv) == 0
    assert calls == [(argv, nproc)]  # the same command line, as given
    assert not (case / "out").exists()  # this process did not train


def test_one_gpu_is_asked_for_in_this_process(gpus) -> None:
    gpus(2)
    assert ddp.processes_for([1]) == 1
    param = caffe_pb2.SolverParameter()
    assert train._device_and_group(param, [1], None) == ("cuda:1", None)
    assert train._device_and_group(param, None, None) == (None, None)


def test_under_torchrun_each_rank_takes_its_gpu(gpus, monkeypatch) -> None:
    gpus(2)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    joined = []
    monkeypatch.setattr(ddp, "init_from_env",
                        lambda backend, device: joined.append((backend, device)) or "group")
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: None)
    param = caffe_pb2.SolverParameter()
    assert train._device_and_group(param, [], "nccl") == ("cuda:1", "group")
    assert joined == [("nccl", torch.device("cuda", 1))]
    # no -gpu: the solver's GPU mode puts each rank on its own GPU, CPU mode on the CPU
    param.solver_mode = caffe_pb2.SolverParameter.GPU
    assert train._device_and_group(param, None, None)[0] == "cuda:1"
    param.solver_mode = caffe_pb2.SolverParameter.CPU
    assert train._device_and_group(param, None, None)[0] is None


def test_nccl_needs_a_gpu(monkeypatch) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SolverError, match="NCCL backend needs a GPU"):
        ddp.init_from_env("nccl", torch.device("cpu"))
