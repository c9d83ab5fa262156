#!/usr/bin/env python
"""Pack the golden data that travels with the repository: tests/oracle/golden.tar.xz.

    python tools/pack_golden.py            # rewrite the archive from ../shared/golden
    python tools/pack_golden.py --check    # exit 1 if the archive differs from ../shared/golden

The archive holds BVLC Caffe's layer, solver, data and upgrade goldens, weights.py, the
README and the small whole-net cases in NETS, so that a plain clone checks fidelity with
nothing beside it (tests/conftest.py unpacks it when ../shared is absent). Members are
sorted and carry no owner or time, so the same input gives the same bytes.
"""

from __future__ import annotations

import argparse
import io
import lzma
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO.parent / "shared" / "golden"
ARCHIVE = REPO / "tests" / "oracle" / "golden.tar.xz"
TREES = ("layers", "solver", "data", "upgrade")
FILES = ("weights.py", "README.md")
# the compact subset of whole nets: every dialect (V0, V1, V2), a Siamese pair with shared
# weights, a train/test net and a detector stage
NETS = ("lenet", "lenet_v0", "lenet_v1", "lenet_train_test", "mnist_siamese",
        "mnist_siamese_train_test", "cifar10_quick", "mtcnn_pnet")


def members(source: Path) -> list[Path]:
    """Every file of the archive, relative to ``source``, sorted."""
    paths = [source / name for name in FILES]
    for tree in (*TREES, *(f"nets/{n}" for n in NETS)):
        paths += [p for p in (source / tree).rglob("*") if p.is_file()]
    return sorted(p.relative_to(source) for p in paths)


def pack(source: Path) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in members(source):
            data = (source / rel).read_bytes()
            info = tarfile.TarInfo(rel.as_posix())
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return lzma.compress(raw.getvalue(), preset=9 | lzma.PRESET_EXTREME)


def unpacked(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, mode="r:xz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="compare the archive with ../shared/golden instead of writing it")
    args = ap.parse_args(argv)
    if not SOURCE.exists():
        print(f"{SOURCE} is absent: the golden data comes from the shared folder",
              file=sys.stderr)
        return 2
    if args.check:
        have = unpacked(ARCHIVE) if ARCHIVE.exists() else {}
        want = {rel.as_posix(): (SOURCE / rel).read_bytes() for rel in members(SOURCE)}
        stale = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
        for name in stale[:20]:
            print(f"differs: {name}", file=sys.stderr)
        if stale:
            print(f"{ARCHIVE.relative_to(REPO)} is stale ({len(stale)} file(s)): run "
                  "python tools/pack_golden.py", file=sys.stderr)
            return 1
        return 0
    ARCHIVE.parent.mkdir(parents=True, exist_ok=True)
    ARCHIVE.write_bytes(pack(SOURCE))
    print(f"wrote {ARCHIVE.relative_to(REPO)} ({ARCHIVE.stat().st_size / 1e6:.1f} MB, "
          f"{len(members(SOURCE))} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
