"""caffe.Net on caffe2torch: construction forms, blobs and params that alias torch storage,
forward/backward over ranges, diff accumulation, loss weights, batches, reshape,
MemoryData, weights in and out, sharing and hooks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import caffe2torch as c2t
import caffe2torch.pycaffe as caffe
from caffe2torch.errors import CaffeError

FAN = """name: "fan" force_backward: true
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 4 dim: 3 } } }
layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 4 dim: 2 } } }
layer { name: "a" type: "InnerProduct" bottom: "x" top: "a"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "b" type: "InnerProduct" bottom: "x" top: "b"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 }
    bias_filler { type: "constant" value: 0.5 } } }
layer { name: "relu" type: "ReLU" bottom: "b" top: "b" }
layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "s" }
layer { name: "loss" type: "EuclideanLoss" bottom: "s" bottom: "y" top: "loss"
  loss_weight: LW }
"""


def write(tmp_path: Path, text: str, name: str = "net.prototxt") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def fan(tmp_path: Path) -> caffe.Net:
    net = caffe.Net(write(tmp_path, FAN.replace("LW", "1")), caffe.TRAIN)
    rng = np.random.default_rng(0)
    net.blobs["x"].data[...] = rng.standard_normal((4, 3))
    net.blobs["y"].data[...] = rng.standard_normal((4, 2))
    return net


def reference_grads(net: caffe.Net, weight: float) -> dict[str, np.ndarray]:
    """Full-graph autograd of the same net (load_net's module) for comparison."""
    module = net.caffe_net
    x = torch.tensor(net.blobs["x"].data, requires_grad=True)
    y = torch.tensor(net.blobs["y"].data)
    out = module(x=x, y=y, blobs=["s", "b"])
    for p in module.parameters():
        p.grad = None
    (weight * out["loss"]).sum().backward()
    grads = {"x": x.grad.numpy().copy()}
    grads.update({f"{n}/{i}": p.grad.numpy().copy() for n, ps in module.params.items()
                  for i, p in enumerate(ps)})
    return grads


# ----------------------------------------------------------------- construction


@pytest.mark.parametrize("form", ["positional", "legacy_weights", "keyword_weights",
                                  "keyword_phase"])
def test_constructor_forms(tmp_path: Path, fan: caffe.Net, form: str) -> None:
    weights = str(tmp_path / "w.caffemodel")
    fan.save(weights)
    proto = write(tmp_path, FAN.replace("LW", "1"), "again.prototxt")
    net = {
        "positional": lambda: caffe.Net(proto, caffe.TRAIN),
        "legacy_weights": lambda: caffe.Net(proto, weights, caffe.TRAIN),
        "keyword_weights": lambda: caffe.Net(proto, caffe.TRAIN, weights=weights),
        "keyword_phase": lambda: caffe.Net(proto, phase=caffe.TEST, weights=weights),
    }[form]()
    if form != "positional":
        np.testing.assert_array_equal(net.params["a"][0].data, fan.params["a"][0].data)
    assert net.phase == (caffe.TEST if form == "keyword_phase" else caffe.TRAIN)


def test_constructor_needs_a_phase(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="phase"):
        caffe.Net(write(tmp_path, FAN.replace("LW", "1")))


def test_a_script_may_name_the_net(fan: caffe.Net) -> None:
    # rbgirshick/fast-rcnn's tools/test_net.py: `net.name = <caffemodel's stem>`, which
    # names its output folder; BVLC's Net has no name property, so the attribute is free
    built = fan.name
    fan.name = "caffenet_fast_rcnn_iter_40000"
    assert fan.name == "caffenet_fast_rcnn_iter_40000"
    assert fan.caffe_net.name == built


def test_structure(fan: caffe.Net) -> None:
    # x feeds two layers: Caffe inserts a Split layer after its producer (InsertSplits)
    assert list(fan.blobs) == ["x", "x_x_0_split_0", "x_x_0_split_1", "y", "a", "b", "s",
                               "loss"]
    assert fan.inputs == ["x", "y"]
    assert fan.outputs == ["loss"]
    assert fan._layer_names == ["x", "x_x_0_split", "y", "a", "b", "relu", "sum", "loss"]
    assert [ly.type for ly in fan.layers] == ["Input", "Split", "Input", "InnerProduct",
                                              "InnerProduct", "ReLU", "Eltwise",
                                              "EuclideanLoss"]
    assert list(fan.layer_dict) == fan._layer_names
    assert fan.bottom_names["a"] == ["x_x_0_split_0"]
    assert fan.bottom_names["b"] == ["x_x_0_split_1"]
    assert fan.top_names["relu"] == ["b"] and fan.bottom_names["sum"] == ["a", "b"]
    assert list(fan.blob_loss_weights.items())[-2:] == [("s", 0.0), ("loss", 1.0)]
    assert set(fan.blob_loss_weights.values()) == {0.0, 1.0}
    assert list(fan.params) == ["a", "b"]
    assert [tuple(p.data.shape) for p in fan.params["a"]] == [(2, 3), (2,)]
    assert fan.blobs["x"].num == 4 and fan.blobs["x"].channels == 3
    assert fan.blobs["x"].height == 1 and fan.blobs["x"].count == 12


def test_split_tops_share_data_and_sum_diffs(fan: caffe.Net) -> None:
    fan.blobs["x"].data[0, 0] = 9.0
    assert fan.blobs["x_x_0_split_1"].data[0, 0] == 9.0  # SplitLayer shares the data
    fan.forward()
    fan.backward()
    np.testing.assert_allclose(
        fan.blobs["x"].diff,
        fan.blobs["x_x_0_split_0"].diff + fan.blobs["x_x_0_split_1"].diff, rtol=1e-6)


def test_loss_weighted_top_with_readers_keeps_its_weight_on_split_0(tmp_path: Path) -> None:
    net = caffe.Net(write(tmp_path, """name: "lw"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip" loss_weight: 2
  inner_product_param { num_output: 1 } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "r" }
"""), caffe.TEST)
    assert list(net.blobs) == ["x", "ip", "ip_ip_0_split_0", "ip_ip_0_split_1", "r"]
    assert net.bottom_names["relu"] == ["ip_ip_0_split_1"]
    assert net.blob_loss_weights["ip_ip_0_split_0"] == 2.0
    assert net.outputs == ["ip_ip_0_split_0", "r"]


# ----------------------------------------------------------------- aliasing


def test_param_writes_are_seen_by_the_next_forward(fan: caffe.Net) -> None:
    fan.params["a"][0].data[...] = 0
    fan.params["a"][1].data[...] = 3
    fan.forward()
    np.testing.assert_array_equal(fan.blobs["a"].data, np.full((4, 2), 3, np.float32))
    assert np.shares_memory(fan.params["a"][0].data,
                            fan.caffe_net.params["a"][0].detach().numpy())


def test_batchnorm_statistics_written_through_a_kept_view_are_used(tmp_path: Path) -> None:
    # numpy writes leave torch's version counters alone: the layer's cached statistics
    # must not outlive them (a view kept across passes, as net-surgery scripts do)
    path = tmp_path / "bn.prototxt"
    path.write_text('input: "x" input_shape { dim: 2 dim: 3 dim: 2 dim: 2 }\n'
                    'layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y" '
                    'batch_norm_param { use_global_stats: true eps: 0 } }\n')
    net = caffe.Net(str(path), caffe.TEST)
    mean, var, factor = (b.data for b in net.params["bn"])
    factor[...] = 1
    var[...] = 4
    net.blobs["x"].data[...] = 3
    np.testing.assert_allclose(net.forward()["y"], 1.5)
    for m in (1.0, 3.0):
        mean[...] = m
        np.testing.assert_allclose(net.forward()["y"], (3 - m) / 2)


def test_blob_data_is_one_array_until_the_blob_changes(fan: caffe.Net) -> None:
    first = fan.blobs["x"].data
    assert fan.blobs["x"].data is first
    fan.blobs["x"].data[0, 0] = 42.0
    fan.forward()
    assert fan.blobs["x"].data is first and first[0, 0] == 42.0


def test_an_array_taken_from_a_computed_blob_follows_the_next_forward(
        tmp_path: Path) -> None:
    # BVLC's net_surgery notebook: conv0 = net.blobs['conv'].data[0, 0] is taken once;
    # after the bias is set to 1 and net.forward(), conv0.mean() is one more (Caffe's
    # layers write into the blob's memory)
    net = caffe.Net(write(tmp_path, """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1
  dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 3 kernel_size: 3
    weight_filler { type: "gaussian" std: 0.1 } } }"""), caffe.TEST)
    net.blobs["data"].data[...] = np.random.default_rng(0).random((1, 1, 8, 8))
    net.forward()
    conv0 = net.blobs["conv"].data[0, 0]
    before = float(conv0.mean())
    net.params["conv"][1].data[0] = 1.0
    net.forward()
    assert float(conv0.mean()) == pytest.approx(before + 1.0, abs=1e-5)
    np.testing.assert_array_equal(conv0, net.blobs["conv"].data[0, 0])
    net.blobs["data"].reshape(1, 1, 10, 10)  # a new shape: new storage, as in Caffe
    net.forward()
    assert net.blobs["conv"].data.shape == (1, 3, 8, 8)


IN_PLACE = """name: "in_place" force_backward: true
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 4 dim: 3 } } }
layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 4 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "h"
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "sc" type: "Scale" bottom: "h" top: "h"
  scale_param { bias_term: true filler { type: "gaussian" std: 1 } } }
layer { name: "relu" type: "ReLU" bottom: "h" top: "h" }
layer { name: "out" type: "InnerProduct" bottom: "h" top: "s"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "s" bottom: "y" top: "loss" }
"""


def test_held_arrays_through_in_place_layers_keep_backward_exact(tmp_path: Path) -> None:
    # arrays held on h (written by ip, then in place by Scale and ReLU) and s: forward
    # writes into their storage, and backward still differentiates what forward computed
    held = caffe.Net(write(tmp_path, IN_PLACE), caffe.TRAIN)
    held.save(str(tmp_path / "w.caffemodel"))
    fresh = caffe.Net(str(tmp_path / "net.prototxt"), str(tmp_path / "w.caffemodel"),
                      caffe.TRAIN)
    rng = np.random.default_rng(3)
    x1, x2, y = (rng.standard_normal(s) for s in ((4, 3), (4, 3), (4, 2)))
    held.blobs["y"].data[...] = y
    held.forward(x=x1)
    h, s0 = held.blobs["h"].data, held.blobs["s"].data[0]
    held.forward(x=x2)
    held.clear_param_diffs()
    held.backward()
    fresh.blobs["y"].data[...] = y
    fresh.forward(x=x2)
    fresh.clear_param_diffs()
    fresh.backward()
    np.testing.assert_array_equal(h, fresh.blobs["h"].data)
    np.testing.assert_array_equal(s0, fresh.blobs["s"].data[0])
    np.testing.assert_allclose(held.blobs["x"].diff, fresh.blobs["x"].diff, rtol=1e-6)
    for name in ("ip", "sc", "out"):
        for a, b in zip(held.params[name], fresh.params[name]):
            np.testing.assert_allclose(a.diff, b.diff, rtol=1e-6, atol=1e-7)


def test_backward_after_a_partial_forward_reads_the_current_data(tmp_path: Path) -> None:
    # forward(end='ip') writes ip's output into h's held storage again (Scale and ReLU
    # do not run): Caffe's backward then reads that h, for the 'out' layer's weight diff
    net = caffe.Net(write(tmp_path, IN_PLACE), caffe.TRAIN)
    rng = np.random.default_rng(4)
    net.blobs["y"].data[...] = rng.standard_normal((4, 2))
    net.forward(x=rng.standard_normal((4, 3)))
    h = net.blobs["h"].data
    net.forward(end="ip")
    net.clear_param_diffs()
    net.backward()
    s_diff = (net.blobs["s"].data - net.blobs["y"].data) / 4  # EuclideanLoss, weight 1
    np.testing.assert_allclose(net.params["out"][0].diff, s_diff.T @ h, rtol=1e-5,
                               atol=1e-6)


# ----------------------------------------------------------------- forward / backward


@pytest.mark.parametrize("weight", [1.0, 2.5], ids=["loss_weight_1", "loss_weight_2.5"])
def test_backward_matches_autograd(tmp_path: Path, weight: float) -> None:
    net = caffe.Net(write(tmp_path, FAN.replace("LW", str(weight))), caffe.TRAIN)
    rng = np.random.default_rng(1)
    net.blobs["x"].data[...] = rng.standard_normal((4, 3))
    net.blobs["y"].data[...] = rng.standard_normal((4, 2))
    assert net.blobs["loss"].diff[()] == pytest.approx(weight)  # seeded by the loss weight
    out = net.forward()
    net.clear_param_diffs()
    diffs = net.backward()
    ref = reference_grads(net, weight)
    # x feeds two layers: its diff is the sum of both (Caffe's Split)
    np.testing.assert_allclose(diffs["x"], ref["x"], rtol=1e-5, atol=1e-6)
    for name in ("a", "b"):
        for i in range(2):
            np.testing.assert_allclose(net.params[name][i].diff, ref[f"{name}/{i}"],
                                       rtol=1e-5, atol=1e-6)
    assert float(out["loss"]) >= 0


def test_in_place_blob_diff_is_the_bottom_diff(fan: caffe.Net) -> None:
    """ReLU works in place on b: b's data is after the ReLU, its diff before it."""
    fan.forward()
    fan.backward()
    pre = fan.blobs["x"].data @ fan.params["b"][0].data.T + fan.params["b"][1].data
    np.testing.assert_allclose(fan.blobs["b"].data, np.maximum(pre, 0), rtol=1e-6)
    s_diff = fan.blobs["s"].diff
    np.testing.assert_allclose(fan.blobs["b"].diff, s_diff * (pre > 0), rtol=1e-6)


def test_param_diffs_accumulate_until_cleared(fan: caffe.Net) -> None:
    fan.forward()
    fan.backward()
    once = fan.params["a"][0].diff.copy()
    held = fan.params["a"][0].diff
    fan.backward()
    np.testing.assert_allclose(held, 2 * once, rtol=1e-6)
    fan.clear_param_diffs()
    assert (held == 0).all()


def test_forward_range_reads_blobs_and_returns_the_end_tops(fan: caffe.Net) -> None:
    fan.forward()
    fan.blobs["a"].data[...] = 1
    fan.blobs["b"].data[...] = 2
    out = fan.forward(start="sum", end="sum")
    assert set(out) == {"s"}
    np.testing.assert_array_equal(out["s"], np.full((4, 2), 3, np.float32))
    # forward(end=) stops there: later blobs keep their values
    loss = fan.blobs["loss"].data.copy()
    fan.forward(end="a")
    np.testing.assert_array_equal(fan.blobs["loss"].data, loss)


def test_backward_range_and_extra_diffs(fan: caffe.Net) -> None:
    fan.forward()
    fan.blobs["a"].diff[...] = 1
    got = fan.backward(start="a", end="a", diffs=["a"])
    assert set(got) == {"x_x_0_split_0", "a"}  # end's bottoms: a reads x through the Split
    np.testing.assert_allclose(got["x_x_0_split_0"],
                               np.ones((4, 2)) @ fan.params["a"][0].data, rtol=1e-6)


def test_forward_kwargs_and_batch_check(fan: caffe.Net) -> None:
    x = np.ones((4, 3), np.float32)
    fan.forward(x=x, y=np.zeros((4, 2), np.float32))
    np.testing.assert_array_equal(fan.blobs["x"].data, x)
    with pytest.raises(CaffeError, match="batch sized"):
        fan.forward(x=np.ones((3, 3), np.float32))
    with pytest.raises(CaffeError, match="not an input"):
        fan.forward(a=np.ones((4, 2)))


DEPLOY = """name: "deploy"
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 10 dim: 1 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


def test_forward_all_and_backward_all(tmp_path: Path) -> None:
    net = caffe.Net(write(tmp_path, DEPLOY), caffe.TEST)
    rows = np.random.default_rng(2).standard_normal((25, 1, 6, 6)).astype(np.float32)
    out = net.forward_all(data=rows, blobs=["conv"])
    assert out["prob"].shape == (25, 3) and out["conv"].shape == (25, 2, 4, 4)
    single = net.forward(data=np.concatenate([rows[20:], np.zeros((5, 1, 6, 6))]))
    np.testing.assert_allclose(out["prob"][20:], single["prob"][:5], rtol=1e-6)
    grads = net.backward_all(prob=np.ones((25, 3), np.float32))
    assert grads["data"].shape == (25, 1, 6, 6)


def test_reshape_propagates(tmp_path: Path) -> None:
    net = caffe.Net(write(tmp_path, DEPLOY), caffe.TEST)
    net.blobs["data"].reshape(2, 1, 6, 6)
    net.reshape()
    assert net.blobs["conv"].data.shape == (2, 2, 4, 4)
    assert net.blobs["prob"].data.shape == (2, 3)
    net.blobs["data"].data[...] = 1
    assert net.forward()["prob"].shape == (2, 3)


MEMORY = """name: "memory"
layer { name: "data" type: "MemoryData" top: "data" top: "label"
  memory_data_param { batch_size: 2 channels: 1 height: 2 width: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 1 } }
"""


def test_set_input_arrays_feeds_batches_in_turn(tmp_path: Path) -> None:
    net = caffe.Net(write(tmp_path, MEMORY), caffe.TEST)
    data = np.arange(24, dtype=np.float32).reshape(6, 1, 2, 2)
    labels = np.arange(6, dtype=np.float32)
    net.set_input_arrays(data, labels)
    seen = []
    for _ in range(4):
        net.forward()
        seen.append(net.blobs["label"].data.ravel().tolist())
    assert seen == [[0, 1], [2, 3], [4, 5], [0, 1]]
    np.testing.assert_array_equal(net.blobs["data"].data, data[:2])
    with pytest.raises(CaffeError, match="multiple of the batch"):
        net.set_input_arrays(data[:3], labels[:3])


# ----------------------------------------------------------------- weights


@pytest.mark.parametrize("kind", ["caffemodel", "hdf5"])
def test_save_and_copy_from_by_content(tmp_path: Path, fan: caffe.Net, kind: str) -> None:
    path = str(tmp_path / "weights_without_extension")
    (fan.save if kind == "caffemodel" else fan.save_hdf5)(path)
    other = caffe.Net(write(tmp_path, FAN.replace("LW", "1"), "b.prototxt"), caffe.TRAIN)
    other.copy_from(path)
    for name in fan.params:
        for mine, theirs in zip(other.params[name], fan.params[name]):
            np.testing.assert_array_equal(mine.data, theirs.data)
    third = caffe.Net(write(tmp_path, FAN.replace("LW", "1"), "c.prototxt"), caffe.TRAIN)
    third.load_hdf5(path) if kind == "hdf5" else third.copy_from(path)
    np.testing.assert_array_equal(third.params["b"][0].data, fan.params["b"][0].data)


def test_share_with(tmp_path: Path, fan: caffe.Net) -> None:
    other = caffe.Net(write(tmp_path, FAN.replace("LW", "1"), "b.prototxt"), caffe.TEST)
    other.share_with(fan)
    fan.params["a"][0].data[...] = 7
    assert (other.params["a"][0].data == 7).all()


def test_hooks_run_around_each_layer(fan: caffe.Net) -> None:
    calls: list[tuple[str, int]] = []
    fan.before_forward(lambda i: calls.append(("bf", i)))
    fan.after_forward(lambda i: calls.append(("af", i)))
    fan.before_backward(lambda i: calls.append(("bb", i)))
    fan.after_backward(lambda i: calls.append(("ab", i)))
    fan.forward(start="sum")
    fan.backward(end="sum")
    assert calls == [("bf", 6), ("af", 6), ("bf", 7), ("af", 7),
                     ("bb", 7), ("ab", 7), ("bb", 6), ("ab", 6)]


# ----------------------------------------------------------------- data layers


@pytest.fixture
def image_net(tmp_path: Path) -> str:
    import cv2

    lines = []
    for i in range(4):
        img = np.full((5, 5, 3), 40 * i, np.uint8)
        cv2.imwrite(str(tmp_path / f"im{i}.png"), img)
        lines.append(f"im{i}.png {i}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    return write(tmp_path, f"""name: "img"
layer {{ name: "data" type: "ImageData" top: "data" top: "label"
  image_data_param {{ source: "{tmp_path / 'list.txt'}" root_folder: "{tmp_path}/"
    batch_size: 2 new_height: 5 new_width: 5 }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param {{ num_output: 1 }} }}
""", "img.prototxt")


def test_forward_reads_the_next_batch(image_net: str) -> None:
    net = caffe.Net(image_net, caffe.TEST)
    labels = []
    for _ in range(3):
        net.forward()
        labels.append(net.blobs["label"].data.ravel().tolist())
    assert labels == [[0, 1], [2, 3], [0, 1]]
    assert net.blobs["data"].data[1, 0, 0, 0] == 40.0


def test_load_net_call_without_inputs_reads_the_next_batch(image_net: str) -> None:
    net = c2t.load_net(image_net, phase="TEST")
    first, second = net(), net()
    assert first["label"].ravel().tolist() == [0, 1]
    assert second["label"].ravel().tolist() == [2, 3]


def test_forward_backward_all_and_index_methods(tmp_path: Path) -> None:
    net = caffe.Net(write(tmp_path, DEPLOY), caffe.TEST)
    rows = np.random.default_rng(4).standard_normal((13, 1, 6, 6)).astype(np.float32)
    outs, diffs = net.forward_backward_all(data=rows, prob=np.ones((13, 3), np.float32))
    assert outs["prob"].shape == (13, 3) and diffs["data"].shape == (13, 1, 6, 6)
    assert net._inputs == [0] and net._outputs == [list(net.blobs).index("prob")]
    net.blobs["data"].data[...] = rows[:10]
    net._forward(0, len(net.layers) - 1)
    np.testing.assert_allclose(net.blobs["prob"].data, outs["prob"][:10], rtol=1e-5)


def test_a_held_data_array_sees_each_new_batch(image_net: str) -> None:
    """Data layers fill the same memory, as in Caffe: an array taken once follows."""
    net = caffe.Net(image_net, caffe.TEST)
    labels = net.blobs["label"].data
    net.forward()
    first = labels.tolist()
    net.forward()
    assert first == [0, 1] and labels.tolist() == [2, 3]
