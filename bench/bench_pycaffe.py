"""pycaffe's API on caffe2torch: ``net.forward()`` through caffe2torch.pycaffe against
``load_net``'s forward on BVLC's CaffeNet deploy net, batch 10 (both on the same input,
timed interleaved), and what reading ``net.blobs[name].data`` allocates (tracemalloc over
1,000 and 10,000 reads: the array is a cached view of the torch storage, so nothing)."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import torch

import caffe2torch as c2t
from bench.common import Report, paired_ratio, shared

GOAL = 1.05
PROTOTXT = shared("corpus", "BVLC__caffe", "models", "bvlc_reference_caffenet",
                  "deploy.prototxt")


def _nets() -> tuple[object, object, np.ndarray]:
    import caffe2torch.pycaffe as caffe

    x = np.random.default_rng(0).standard_normal((10, 3, 227, 227)).astype(np.float32)
    plain = c2t.load_net(PROTOTXT, phase="TEST")
    py = caffe.Net(PROTOTXT, caffe.TEST)
    py.blobs["data"].reshape(*x.shape)  # already batch 10; kept for scripts that copy this
    py.blobs["data"].data[...] = x
    for name, blobs in plain.params.items():  # the same weights in both
        for mine, theirs in zip(py.params[name], blobs):
            mine.data[...] = theirs.detach().numpy()
    return plain, py, x


def allocation_per_read(py: object, reads: int = 10_000) -> tuple[int, bool]:
    """(bytes still allocated after ``reads`` reads of blobs['fc7'].data and .diff, and
    whether every read gave the very same array object)."""
    blob = py.blobs["fc7"]  # type: ignore[attr-defined]
    first = blob.data
    blob.diff  # noqa: B018  (a blob's diff is allocated at its first use, as in Caffe)
    same = True
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    for _ in range(reads):
        same &= py.blobs["fc7"].data is first  # type: ignore[attr-defined]
        py.blobs["fc7"].diff  # type: ignore[attr-defined]  # noqa: B018
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return after - before, same


def run(report: Report, quick: bool) -> None:
    if not os.path.exists(PROTOTXT):
        report.notes.append(f"pycaffe: skipped, {PROTOTXT} is absent")
        return
    plain, py, x = _nets()
    xt = torch.from_numpy(x)

    def load_net_forward() -> object:
        with torch.no_grad():
            return plain(data=xt)  # type: ignore[operator]

    def pycaffe_forward() -> object:
        return py.forward()  # type: ignore[attr-defined]

    a = load_net_forward()["prob"]  # type: ignore[index]
    b = pycaffe_forward()["prob"]  # type: ignore[index]
    assert np.allclose(a.numpy(), b, atol=1e-6), "the two forwards disagree"
    t_plain, t_py, ratio = paired_ratio(load_net_forward, pycaffe_forward,
                                        repeat=5 if quick else 15, warmup=2)
    report.add("pycaffe", "CaffeNet b10 net.forward() vs load_net",
               f"{t_py * 1e3:.1f} ms vs {t_plain * 1e3:.1f} ms ({ratio:.3f}x)",
               f"<= {GOAL:.2f}x", ratio <= GOAL)
    # the measurement itself keeps a few bytes: what grows with the number of reads is
    # what a read allocates
    small, same_a = allocation_per_read(py, 1_000)
    large, same_b = allocation_per_read(py, 10_000)
    per_read = (large - small) / 9_000
    report.add("pycaffe", "blobs['fc7'].data/.diff per read",
               f"{per_read:.3f} bytes (same array: {same_a and same_b})", "0 bytes",
               per_read <= 0 and same_a and same_b)


if __name__ == "__main__":
    r = Report()
    run(r, quick=False)
