"""Shared fixtures: where ../shared is, and a clean skip when it is absent."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
SEEDS = SHARED / "seeds"
# The oracle that travels with the repository (tools/pack_golden.py): BVLC Caffe's layer,
# solver, data and upgrade goldens and a few whole nets, used when ../shared is absent.
ORACLE = REPO / "tests" / "oracle" / "golden.tar.xz"


def _unpacked_oracle() -> Path:
    """tests/oracle/golden.tar.xz unpacked once into a folder named by its content."""
    digest = hashlib.sha256(ORACLE.read_bytes()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"caffe2torch-golden-{digest}"
    if not target.exists():
        scratch = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        with tarfile.open(ORACLE, mode="r:xz") as tar:
            if hasattr(tarfile, "data_filter"):  # refuse links and paths outside the folder
                tar.extractall(scratch, filter="data")
            else:
                tar.extractall(scratch)
        try:
            scratch.rename(target)
        except OSError:  # another process got there first
            shutil.rmtree(scratch, ignore_errors=True)
    return target


def _golden_root() -> Path:
    shared = SHARED / "golden"
    if shared.exists() or not ORACLE.exists():
        return shared
    return _unpacked_oracle()


GOLDEN = _golden_root()


def need_shared(path: Path = SHARED) -> Path:
    """Skip the calling test when ``path`` (under ../shared) is not there."""
    if not path.exists():
        pytest.skip(f"{path} is absent: this test needs the ../shared folder beside the checkout")
    return path


@pytest.fixture
def shared_dir() -> Path:
    return need_shared(SHARED)


@pytest.fixture
def golden_dir() -> Path:
    return need_shared(GOLDEN)


@pytest.fixture
def corpus_dir() -> Path:
    return need_shared(CORPUS)


@pytest.fixture
def seeds_dir() -> Path:
    return need_shared(SEEDS)
