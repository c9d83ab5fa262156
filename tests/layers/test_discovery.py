"""layers.discovery answers as importlib.metadata.entry_points does (tests/cli/test_startup.py
checks that lint no longer imports importlib.metadata)."""

from __future__ import annotations

import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from caffe2torch.layers.discovery import _may_declare, declares_entry_points

GROUP = "caffe2torch.layers"


def _dist(root: Path, name: str, entry_points: bytes | None) -> None:
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if entry_points is not None:
        (info / "entry_points.txt").write_bytes(entry_points)


def _same_as_metadata(group: str) -> bool:
    answer = declares_entry_points(group)
    assert answer == bool(metadata.entry_points(group=group))
    return answer


def test_no_plugin_installed_is_answered_without_metadata() -> None:
    assert not _may_declare("caffe2torch.no-such-group")
    assert not _same_as_metadata("caffe2torch.no-such-group")


def test_a_declared_group_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _dist(tmp_path, "c2t_plugin_x", b"[caffe2torch.layers]\nmy_layer = mypkg.layers\n")
    _dist(tmp_path, "other_x", b"[console_scripts]\nfoo = foo:main\n")
    _dist(tmp_path, "bare_x", None)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _same_as_metadata(GROUP)
    assert not _same_as_metadata("c2t.absent.group")


def test_an_empty_section_is_no_entry_point(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _dist(tmp_path, "c2t_empty_x", b"[caffe2torch.layers]\n\n[console_scripts]\nx = x:m\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _may_declare(GROUP)  # the fast path only proves absence ...
    assert not _same_as_metadata(GROUP)  # ... importlib.metadata decides


def test_a_zip_on_the_path_is_left_to_metadata(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("c2t_zip_x-1.0.dist-info/METADATA", "Name: c2t_zip_x\nVersion: 1.0\n")
        z.writestr("c2t_zip_x-1.0.dist-info/entry_points.txt",
                   "[caffe2torch.layers]\nz = zmod\n")
    monkeypatch.syspath_prepend(str(archive))
    assert _may_declare("c2t.absent.group")
    assert _same_as_metadata(GROUP)


def test_a_finder_of_its_own_is_left_to_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    class Finder:
        @staticmethod
        def find_spec(*args: object) -> None:
            return None

        @staticmethod
        def find_distributions(*args: object) -> list[metadata.Distribution]:
            return []

    import sys

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder])
    assert _may_declare("c2t.absent.group")
