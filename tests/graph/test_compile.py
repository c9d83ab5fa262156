"""Compiled execution (graph.compile): one compile per graph, one more for a batch
change, none for switching nets; numerics within the golden tolerances under inductor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import caffe2torch as c2t
from caffe2torch.errors import CaffeError
from caffe2torch.graph.compile import compile_net
from tests.graph.test_golden_nets import run_net_case
from tests.support.golden import case_dirs, load_case

LENET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 1 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
"""


class CountingBackend:
    """A torch.compile backend that counts the graphs it is handed and runs them eagerly."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        self.graphs += 1
        return gm.forward


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.prototxt"
    path.write_text(LENET)
    return path


def test_batch_change_recompiles_once_and_nets_keep_their_graphs(tiny: Path) -> None:
    torch._dynamo.reset()
    backend = CountingBackend()
    train = compile_net(c2t.load_net(tiny, phase="TRAIN"), backend=backend)
    test = compile_net(c2t.load_net(tiny, phase="TEST"), backend=backend)
    eager = c2t.load_net(tiny, phase="TEST")
    eager.load_state_dict(test.state_dict())
    for batch in (2, 3, 5, 7):
        x = torch.randn(batch, 1, 8, 8)
        torch.testing.assert_close(test(data=x)["ip"], eager(data=x)["ip"])
        train(data=x)["ip"].sum().backward()
    # TEST: static graph, then one symbolic in the batch; the same for TRAIN
    assert backend.graphs == 4
    for batch in (2, 9):  # switching back and forth compiles nothing more
        test(data=torch.randn(batch, 1, 8, 8))
        train(data=torch.randn(batch, 1, 8, 8))
    assert backend.graphs == 4


def test_load_net_compile_flag(tiny: Path) -> None:
    net = c2t.load_net(tiny, compile=True)
    assert net.compiled is not None and net.compiled.backend == "inductor"
    assert c2t.load_net(tiny).compiled is None
    with pytest.raises(CaffeError, match="CaffeNet"):
        compile_net(torch.nn.Linear(2, 2))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lenet", "mnist_siamese"])
def test_inductor_matches_caffe_golden(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dirs = [d for d in case_dirs("nets") if d.name == name]
    if not dirs:
        pytest.skip("../shared/golden/nets is absent")
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    real = c2t.load_net
    monkeypatch.setattr(c2t, "load_net", lambda *a, **k: real(*a, compile=True, **k))
    run_net_case(load_case(dirs[0]))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1
