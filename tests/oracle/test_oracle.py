"""The golden data in the repository (tests/oracle/golden.tar.xz) is the shared oracle's:
byte for byte the same files, so a plain clone checks exactly what CI checks."""

from __future__ import annotations

import importlib.util
import tarfile

from tests.conftest import ORACLE, REPO, SHARED, need_shared


def _pack_golden():
    spec = importlib.util.spec_from_file_location("pack_golden", REPO / "tools" / "pack_golden.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_archive_matches_the_shared_goldens() -> None:
    need_shared(SHARED / "golden")
    assert _pack_golden().main(["--check"]) == 0


def test_archive_holds_every_kind_of_golden() -> None:
    with tarfile.open(ORACLE, mode="r:xz") as tar:
        names = tar.getnames()
    tops = {n.split("/", 1)[0] for n in names}
    assert {"layers", "solver", "data", "upgrade", "nets", "weights.py", "README.md"} <= tops
    assert all(not n.startswith(("/", "..")) and "/../" not in n for n in names)
    layer_types = {n.split("/")[1] for n in names if n.startswith("layers/")}
    assert len(layer_types) >= 50
