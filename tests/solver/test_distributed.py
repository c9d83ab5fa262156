"""Data-parallel training as Caffe's multi-GPU training: two gloo processes with batch B
end with the weights of one process with batch 2B on the same (shuffled, seeded) data;
the data shards of the ranks are disjoint and keep paired list files aligned."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

import caffe2torch as c2t
from caffe2torch.data import DataFeeder
from caffe2torch.io import read_net
from caffe2torch.solver.solver import get_solver
from tests.solver.tiny import write_case, write_data

REPO = Path(__file__).resolve().parents[2]


def _torchrun(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node=2", "-m", "caffe2torch", *args]
    return subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=120)


def test_two_gloo_ranks_equal_one_process_with_twice_the_batch(tmp_path: Path,
                                                              monkeypatch) -> None:
    write_data(tmp_path)
    iters = 6  # 2 epochs of the 24 rows: the second epoch's shuffle must agree too
    write_case(tmp_path, batch=4, name="ddp", max_iter=iters)
    write_case(tmp_path, batch=8, name="single", max_iter=iters)
    done = _torchrun(tmp_path, "train", "-solver", "ddp.prototxt",
                     "--distributed-backend", "gloo", "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    # rank 0 alone logs (one Solving line), snapshots, writes the CSV
    assert done.stderr.count("Solving tiny_mlp") == 1
    assert done.stderr.count("Optimization Done.") == 1
    assert (tmp_path / f"out/ddp_iter_{iters}.caffemodel").exists()

    monkeypatch.chdir(tmp_path)
    solver = get_solver("single.prototxt", log=None)
    solver.solve()
    solver.close()
    trained = c2t.load_net("ddp_net.prototxt", phase="TRAIN",
                           input_shapes={"data": (4, 5), "label": (4,)},
                           weights=f"out/ddp_iter_{iters}.caffemodel")
    for layer in ("ip1", "ip2"):
        for ours, theirs in zip(trained.params[layer], solver.net.params[layer]):
            np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(),
                                       rtol=1e-5, atol=1e-5)
    fresh = get_solver("single.prototxt", log=None)  # the same seeded fillers, untrained
    fresh.close()
    moved = float((trained.params["ip2"][0] - fresh.net.params["ip2"][0]).detach().abs().sum())
    assert moved > 1e-3  # the weights did train


def _feeder(tmp: Path, net: str, rank: int, world: int) -> DataFeeder:
    return DataFeeder.from_net(read_net(str(tmp / net)), "TRAIN", cwd=tmp, seed=11,
                               rank=rank, world_size=world)


def test_rank_shards_are_disjoint_and_make_up_the_big_batch(tmp_path: Path) -> None:
    write_data(tmp_path, rows=10)  # odd epochs per rank: the shuffles must still agree
    write_case(tmp_path, batch=3, name="small")
    write_case(tmp_path, batch=6, name="big")
    ranks = [_feeder(tmp_path, "small_net.prototxt", r, 2) for r in range(2)]
    single = _feeder(tmp_path, "big_net.prototxt", 0, 1)
    for _ in range(7):  # 42 positions: four reshuffles
        parts = [f.next_batch() for f in ranks]
        big = single.next_batch()
        # position p of the one order goes to rank p % 2
        merged = torch.stack([parts[0]["data"], parts[1]["data"]], 1).reshape(6, -1)
        torch.testing.assert_close(merged, big["data"])


def test_rank_shards_keep_two_image_lists_aligned(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for i in range(9):
        cv2.imwrite(str(tmp_path / f"a{i}.png"), rng.integers(0, 255, (4, 4, 3), np.uint8))
        cv2.imwrite(str(tmp_path / f"b{i}.png"), rng.integers(0, 255, (4, 4, 3), np.uint8))
    (tmp_path / "train1.txt").write_text("".join(f"a{i}.png {i}\n" for i in range(9)))
    (tmp_path / "train2.txt").write_text("".join(f"b{i}.png {i}\n" for i in range(9)))
    net = """name: "pairs"
layer { name: "a" type: "ImageData" top: "data" top: "label"
  image_data_param { source: "train1.txt" batch_size: 2 shuffle: true } }
layer { name: "b" type: "ImageData" top: "data_p" top: "label_p"
  image_data_param { source: "train2.txt" batch_size: 2 shuffle: true } }
"""
    (tmp_path / "pairs.prototxt").write_text(net)
    ranks = [_feeder(tmp_path, "pairs.prototxt", r, 2) for r in range(2)]
    seen: list[list[int]] = [[], []]
    for _ in range(9):  # 36 positions, 4 epochs of 9 rows
        for r, f in enumerate(ranks):
            batch = f.next_batch()
            assert torch.equal(batch["label"], batch["label_p"])  # pairs stay pairs
            seen[r] += [int(v) for v in batch["label"]]
    # per epoch of 9 positions the two ranks read every row exactly once between them
    order = [seen[p % 2][p // 2] for p in range(36)]
    for epoch in range(4):
        assert sorted(order[9 * epoch:9 * epoch + 9]) == list(range(9))
