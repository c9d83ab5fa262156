"""Lint in a fresh interpreter (layer types from layers/builtin_types.py, no torch) finds
exactly what it finds beside the loaded layer registry, message and help included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from caffe2torch.lint.context import Options
from caffe2torch.lint.engine import lint_file
from tests.conftest import REPO

FIXTURES = Path(__file__).parent / "fixtures"
FILES = sorted(FIXTURES.glob("*.prototxt"))

_PROBE = """
import json, sys
from caffe2torch.lint.context import Options
from caffe2torch.lint.engine import lint_file
out = {}
for p in sys.argv[1:]:
    opts = Options(check_data="# check-data" in open(p).read())
    out[p] = [d.to_dict() for d in lint_file(p, opts)]
assert "torch" not in sys.modules
print(json.dumps(out))
"""


def test_fixtures_lint_the_same_without_the_registry() -> None:
    import caffe2torch.layers.registry  # noqa: F401  (here the registry answers)

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _PROBE, *map(str, FILES)], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    fresh = json.loads(done.stdout)
    for p in FILES:
        opts = Options(check_data="# check-data" in p.read_text())
        here = [d.to_dict() for d in lint_file(p, opts)]
        assert fresh[str(p)] == here, p.name
