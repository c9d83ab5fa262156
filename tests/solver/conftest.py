"""The tiny HDF5 classifier case (tests/solver/tiny.py) in a temporary working folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.solver.tiny import write_case, write_data


@pytest.fixture
def tiny_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """``tiny_case(batch=, max_iter=, test_interval=)``: data, net and ``solver.prototxt``
    in tmp_path, which becomes the working directory; returns tmp_path."""

    def make(**kw: Any) -> Path:
        write_data(tmp_path)
        write_case(tmp_path, **kw)
        monkeypatch.chdir(tmp_path)
        return tmp_path

    return make
