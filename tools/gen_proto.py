#!/usr/bin/env python
"""Regenerate caffe2torch/proto/caffe_pb2.py and its type stub caffe_pb2.pyi from
proto/caffe.proto.

    python tools/gen_proto.py            # rewrite the committed module and stub
    python tools/gen_proto.py --check    # exit 1 if either committed file is stale
    python tools/gen_proto.py --out-dir DIR   # write caffe_pb2.py and .pyi into DIR instead

Needs grpcio-tools (pinned in the `dev` extra), whose bundled protoc fixes the
exact bytes of the generated files; use that version so --check stays stable. The stub
is protoc's own (--pyi_out): it lets the type checker see every message's fields.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTO_DIR = REPO / "proto"
PROTO_FILE = PROTO_DIR / "caffe.proto"
TARGET_DIR = REPO / "caffe2torch" / "proto"
GENERATED = ("caffe_pb2.py", "caffe_pb2.pyi")


def generate(out_dir: Path) -> list[Path]:
    """Compile proto/caffe.proto into ``out_dir``; return the caffe_pb2.py and .pyi paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_DIR}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        str(PROTO_FILE),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr or proc.stdout)
        raise SystemExit(f"protoc failed on {PROTO_FILE} (exit {proc.returncode})")
    outs = [out_dir / name for name in GENERATED]
    for out in outs:
        if not out.is_file():
            raise SystemExit(f"protoc produced no {out}")
    return outs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="compare a fresh build with the committed files; exit 1 if they differ")
    mode.add_argument("--out-dir", type=Path, help="write caffe_pb2.py and .pyi into this folder")
    args = parser.parse_args(argv)

    if args.out_dir is not None:
        for out in generate(args.out_dir):
            print(out)
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        fresh = {out.name: out.read_bytes() for out in generate(Path(tmp))}
    if args.check:
        stale = [name for name, data in fresh.items()
                 if not (TARGET_DIR / name).is_file() or (TARGET_DIR / name).read_bytes() != data]
        for name in stale:
            print(f"{(TARGET_DIR / name).relative_to(REPO)} is stale: run python "
                  "tools/gen_proto.py", file=sys.stderr)
        if stale:
            return 1
        print(f"{', '.join(GENERATED)} in {TARGET_DIR.relative_to(REPO)} are up to date")
        return 0
    for name, data in fresh.items():
        (TARGET_DIR / name).write_bytes(data)
        print(f"wrote {(TARGET_DIR / name).relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
