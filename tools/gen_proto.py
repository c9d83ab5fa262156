#!/usr/bin/env python
"""Regenerate caffe2torch/proto/caffe_pb2.py from proto/caffe.proto.

    python tools/gen_proto.py            # rewrite the committed module
    python tools/gen_proto.py --check    # exit 1 if the committed module is stale
    python tools/gen_proto.py --out-dir DIR   # write caffe_pb2.py into DIR instead

Needs grpcio-tools (pinned in the `dev` extra), whose bundled protoc fixes the
exact bytes of the generated module; use that version so --check stays stable.
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
TARGET = REPO / "caffe2torch" / "proto" / "caffe_pb2.py"


def generate(out_dir: Path) -> Path:
    """Compile proto/caffe.proto into ``out_dir``; return the caffe_pb2.py path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_DIR}",
        f"--python_out={out_dir}",
        str(PROTO_FILE),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr or proc.stdout)
        raise SystemExit(f"protoc failed on {PROTO_FILE} (exit {proc.returncode})")
    out = out_dir / "caffe_pb2.py"
    if not out.is_file():
        raise SystemExit(f"protoc produced no {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="compare a fresh build with the committed module; exit 1 if they differ")
    mode.add_argument("--out-dir", type=Path, help="write caffe_pb2.py into this folder")
    args = parser.parse_args(argv)

    if args.out_dir is not None:
        print(generate(args.out_dir))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp)).read_bytes()
    if args.check:
        current = TARGET.read_bytes() if TARGET.is_file() else b""
        if current != fresh:
            print(f"{TARGET.relative_to(REPO)} is stale: run python tools/gen_proto.py",
                  file=sys.stderr)
            return 1
        print(f"{TARGET.relative_to(REPO)} is up to date")
        return 0
    TARGET.write_bytes(fresh)
    print(f"wrote {TARGET.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
