"""Data pipeline: ImageData over a list of 2,000 generated 256x256 JPEGs (crop 227, batch
32, TRAIN: random crops and mirrors) read by DataFeeder with N workers, against raw
OpenCV decoding (cv2.imread) on one core."""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from bench.common import Report
from caffe2torch.data import DataFeeder
from caffe2torch.proto import caffe_pb2

GOAL = 0.9
# Published fp32 training throughput of AlexNet on one current data-centre GPU is of the
# order of 3,000-5,000 images/s at large batch; at batch 32 launch overheads lower it. We
# take 2,500 images/s as the rate a GPU would consume at b32.
GPU_ALEXNET_B32 = 2500.0


def make_images(folder: str, count: int) -> str:
    import cv2

    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), (256, 256))
    lines = []
    for i in range(count):
        img = np.roll(base, i, axis=1) + rng.integers(0, 16, (256, 256, 3), dtype=np.uint8)
        name = f"img{i:05d}.jpg"
        cv2.imwrite(os.path.join(folder, name), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        lines.append(f"{name} {i % 10}\n")
    listfile = os.path.join(folder, "list.txt")
    with open(listfile, "w") as f:
        f.writelines(lines)
    return listfile


def image_data_layer(listfile: str, batch: int) -> caffe_pb2.LayerParameter:
    layer = caffe_pb2.LayerParameter(name="data", type="ImageData", top=["data", "label"])
    layer.image_data_param.source = listfile
    layer.image_data_param.batch_size = batch
    layer.image_data_param.shuffle = True
    layer.transform_param.crop_size = 227
    layer.transform_param.mirror = True
    return layer


def _decode_share(args: tuple[list[str], float]) -> float:
    import cv2

    cv2.setNumThreads(1)
    names, start = args
    while time.time() < start:  # all processes begin together
        pass
    t0 = time.perf_counter()
    for n in names:
        cv2.imread(n, cv2.IMREAD_COLOR)
    return time.perf_counter() - t0


def raw_decode_rate(folder: str, count: int, processes: int = 1) -> float:
    """Images per second that ``processes`` processes decoding disjoint shares of the list
    with cv2.imread reach together (what that many cores really do: on a virtual machine
    two cores rarely decode twice as fast as one)."""
    names = [os.path.join(folder, f"img{i:05d}.jpg") for i in range(count)]
    if processes == 1:
        return count / _decode_share((names, 0.0))
    import multiprocessing as mp

    with mp.get_context().Pool(processes) as pool:
        start = time.time() + 0.5
        walls = pool.map(_decode_share, [(names[i::processes], start)
                                         for i in range(processes)])
    return count / max(walls)


def feeder_rate(listfile: str, workers: int, images: int, batch: int = 32) -> float:
    """Steady-state images per second of DataFeeder (worker start-up and the first
    batches, which the main process reads to learn the shapes, left out)."""
    layer = image_data_layer(listfile, batch)
    with DataFeeder([layer], "TRAIN", cwd=os.path.dirname(listfile), num_workers=workers,
                    seed=1) as feeder:
        for _ in range(2 + 2 * workers):
            feeder.next_batch()
        n = 0
        t0 = time.perf_counter()
        while n < images:
            n += feeder.next_batch()["data"].shape[0]
        return n / (time.perf_counter() - t0)


def run(report: Report, quick: bool) -> None:
    import cv2

    cv2.setNumThreads(1)
    count = 2000
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        listfile = make_images(tmp, count)
        images = 640 if quick else count
        raw_decode_rate(tmp, count)  # warms the page cache
        raw = {n: max(raw_decode_rate(tmp, count, n) for _ in range(2))
               for n in sorted({1, cores})}
        for n, rate in raw.items():
            report.add("data pipeline", f"raw cv2.imread, {n} process{'es' * (n > 1)}",
                       f"{rate:7.0f} img/s", "", None,
                       "" if n == 1 else f"{rate / raw[1]:.2f}x of 1 process")
        best = 0.0
        for workers in sorted({0, 1, cores}):
            rate = feeder_rate(listfile, workers, images)
            n = max(workers, 1)
            ratio = rate / raw[n]
            best = max(best, rate)
            report.add("data pipeline", f"DataFeeder ImageData b32 crop 227, {workers} workers",
                       f"{rate:7.0f} img/s = {ratio:.2f}x of raw on {n} core{'s' * (n > 1)}",
                       f">= {GOAL}x", ratio >= GOAL,
                       f"{rate / (n * raw[1]):.2f}x of {n} x 1-core raw" if n > 1 else "")
        report.notes.append(
            f"data: the best rate here, {best:.0f} img/s on {cores} cores "
            f"({best / cores:.0f} img/s per core), against about {GPU_ALEXNET_B32:.0f} img/s "
            f"that AlexNet b32 takes on a GPU: with {GPU_ALEXNET_B32 / max(best / cores, 1):.1f}"
            " cores like these the training would not wait on data."
        )
