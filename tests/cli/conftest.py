"""The tiny Siamese project (tests.support.cli_project) as a fixture of the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli_project import make_project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project written in a fresh folder that is also the working directory."""
    monkeypatch.chdir(tmp_path)
    return make_project(tmp_path)
