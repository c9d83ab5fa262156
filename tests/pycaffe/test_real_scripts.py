"""What real pycaffe scripts from public repositories needed beyond BVLC's own tests
(docs/pycaffe.md, "Real scripts"), each checked on a small script or net of ours."""

from __future__ import annotations

import re
from pathlib import Path

import caffe2torch.pycaffe as caffe
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
    diff = float(re.search(r"max difference (\S+)", out).group(1))
    assert diff < 1e-4, out
