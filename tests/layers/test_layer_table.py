"""docs/architecture.md's supported-layers table is what the registry holds today."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

TOOL = REPO / "tools" / "gen_layer_table.py"


def test_layer_table_is_current() -> None:
    # a fresh interpreter: tests register layer types of their own in this one
    proc = subprocess.run([sys.executable, str(TOOL), "--check"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_table_lists_every_built_in_type() -> None:
    # what layers/catalog.py registers, read without the plug-in entry points
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys; sys.path.insert(0, sys.argv[1]); import caffe2torch.layers.catalog; "
         "from caffe2torch.layers.registry import _REGISTRY; print('\\n'.join(_REGISTRY))",
         str(REPO)],
        capture_output=True, text=True, check=True,
    )
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = doc[doc.index("<!-- layer-table: begin"):doc.index("<!-- layer-table: end")]
    rows = {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}
    assert len(rows) > 90
    assert set(proc.stdout.split()) == rows
