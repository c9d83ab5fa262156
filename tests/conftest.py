"""Shared fixtures: where ../shared is, and a clean skip when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
GOLDEN = SHARED / "golden"
CORPUS = SHARED / "corpus"
SEEDS = SHARED / "seeds"


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
