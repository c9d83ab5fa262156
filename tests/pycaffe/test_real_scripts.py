"""What real pycaffe scripts from public repositories needed beyond BVLC's own tests
(docs/pycaffe.md, "Real scripts"), each checked on a small script or net of ours."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import caffe2torch.pycaffe as caffe
from caffe2torch.errors import CaffeError
from tests.pycaffe.test_example_workflows import run_script


def test_caffe_module_names_the_compiled_module_types() -> None:
    # python/caffe/_caffe.cpp: the classes and functions a script may reach through
    # caffe._caffe are those of caffe itself
    for name in ("Net", "Blob", "BlobVec", "Layer", "SGDSolver", "get_solver",
                 "set_mode_cpu", "layer_type_list", "Timer"):
        assert getattr(caffe._caffe, name) is getattr(caffe, name)


def test_fold_batchnorm_surgery(tmp_path: Path) -> None:
    out = run_script("fold_batchnorm.py", str(tmp_path), cwd=tmp_path)
    assert "conv [(4, 3, 3, 3), (4,)]" in out
    found = re.search(r"max difference (\S+)", out)
    assert found, out
    diff = float(found.group(1))
    assert diff < 1e-4, out


def test_nccl_refuses_with_the_multi_gpu_route() -> None:
    # python/train.py starts with caffe.NCCL.new_uid(); has_nccl() stays False
    assert caffe.has_nccl() is False
    assert caffe._caffe.NCCL is caffe.NCCL
    with pytest.raises(CaffeError, match="NCCL") as info:
        caffe.NCCL.new_uid()
    assert "-gpu all" in (info.value.hint or "")
    with pytest.raises(CaffeError, match="NCCL"):
        caffe.NCCL(None, "")


def test_import_caffe_loads_pil_image_as_pycaffe_does() -> None:
    # py-faster-rcnn's imdb.py says `import PIL` and calls PIL.Image.open: with BVLC's
    # pycaffe, caffe.io's scikit-image has loaded PIL.Image by then
    pytest.importorskip("PIL")
    import subprocess
    import sys

    code = ("import caffe2torch.pycaffe.alias as a; a.install(); import caffe, PIL; "
            "print(PIL.Image.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "PIL.Image", out.stderr
