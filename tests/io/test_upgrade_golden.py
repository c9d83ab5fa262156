"""Our upgrades against BVLC Caffe's upgrade tools (../shared/golden/upgrade, see its README).

net_text / solver_text / solver_inline_net: the upgraded message must equal Caffe's
out.prototxt parsed into a message; cases Caffe refused (status failed, rc != 0) must be
refused by us too. REFUSED.tsv rows of the upgrade tools are checked as well.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from caffe2torch.errors import ParseError, UpgradeError
from caffe2torch.io import (
    net_to_text,
    read_net_text,
    read_solver_text,
    upgrade_net,
    upgrade_text,
)
from caffe2torch.io.text import decode
from caffe2torch.io.upgrade import needs_upgrade
from caffe2torch.proto import caffe_pb2
from caffe2torch.proto.forks import FORK_FIELDS
from tests.conftest import CORPUS, GOLDEN, SEEDS, need_shared

UPGRADE = GOLDEN / "upgrade"


def _cases(kinds: tuple[str, ...]) -> list[Path]:
    if not UPGRADE.exists():
        return []
    out = []
    for d in sorted(p for p in UPGRADE.iterdir() if p.is_dir()):
        meta = json.loads((d / "meta.json").read_text())
        if meta["kind"] in kinds:
            out.append(d)
    return out


TEXT_CASES = _cases(("net_text", "solver_text", "solver_inline_net"))
BINARY_CASES = _cases(("net_binary",))


def _read(kind: str, text: str):
    return read_solver_text(text) if kind == "solver_text" else read_net_text(text)


def _expected(kind: str, case: Path):
    msg = caffe_pb2.SolverParameter() if kind == "solver_text" else caffe_pb2.NetParameter()
    text_format.Merge((case / "out.prototxt").read_text(encoding="utf-8"), msg)
    if kind == "solver_text":
        # Caffe's solver tool leaves an inline V0/V1 net as it is; we upgrade it (the inline
        # net's own upgrade is checked against the `__net_param` case).
        nets = [msg.net_param, msg.train_net_param, *msg.test_net_param]
        for net in nets:
            if needs_upgrade(net):
                net.CopyFrom(upgrade_net(net))
    return msg


@pytest.mark.shared
@pytest.mark.parametrize("case", TEXT_CASES, ids=[c.name for c in TEXT_CASES])
def test_text_upgrade_matches_caffe(case: Path) -> None:
    need_shared(UPGRADE)
    meta = json.loads((case / "meta.json").read_text())
    kind = meta["kind"]
    text = decode((case / "in.prototxt").read_bytes())
    if meta["status"] == "failed":  # Caffe aborted and wrote nothing
        assert meta["rc"] != 0 and not (case / "out.prototxt").exists()
        with pytest.raises(UpgradeError) as info:
            _read(kind, text)
        # the message repeats what Caffe says
        caffe_line = next(x for x in meta["log"] if x.startswith("F "))
        if "both 'layer' and 'layers'" in caffe_line:
            assert "cannot mix V1 `layers` and V2 `layer`" in info.value.message
            assert info.value.line is not None
        elif "solver_type" in caffe_line:
            assert "solver_type" in info.value.message and "type" in info.value.message
        return
    got = _read(kind, text)
    want = _expected(kind, case)
    if got != want:  # show a readable diff
        assert net_to_text(got) == net_to_text(want)
    assert got == want


@pytest.mark.shared
def test_text_upgrade_prints_as_caffe() -> None:
    """Byte-for-byte: upgrade_text prints what Caffe's tool wrote (inline solver nets aside,
    which we upgrade and Caffe does not)."""
    need_shared(UPGRADE)
    same = compared = 0
    for case in TEXT_CASES:
        meta = json.loads((case / "meta.json").read_text())
        out = case / "out.prototxt"
        if meta["status"] == "failed" or not out.exists():
            continue
        text = decode((case / "in.prototxt").read_bytes())
        if meta["kind"] == "solver_text" and "net_param" in text:
            continue
        compared += 1
        mine = upgrade_text(text)
        assert mine == out.read_text(encoding="utf-8"), case.name
        same += 1
    print(f"upgrade_text byte-identical to Caffe: {same}/{compared}")
    assert compared > 50


_CAFFE_PARSE = re.compile(r'(\d+):(\d+): Message type "caffe\.(\w+)" has no field named "(\w+)"')


def _refused_rows() -> list[dict[str, str]]:
    path = UPGRADE / "REFUSED.tsv"
    if not path.exists():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [r for r in rows if r["stage"].startswith("upgrade_")]


# rows of synthetic inputs are checked through their golden folders above
REFUSED = [r for r in _refused_rows() if not r["source"].startswith("synthetic/")]


def _source_file(source: str) -> Path | None:
    p = SEEDS / source.removeprefix("seeds/") if source.startswith("seeds/") else CORPUS / source
    return p if p.exists() else None


@pytest.mark.shared
@pytest.mark.parametrize("row", REFUSED, ids=[r["source"] for r in REFUSED])
def test_caffe_refusals(row: dict[str, str]) -> None:
    """What Caffe's upgrade tools refused: an upgrade refusal is ours too; a parse failure is
    ours too unless our schema now knows the fork field (then the file must read)."""
    need_shared(UPGRADE)
    path = _source_file(row["source"])
    if path is None:
        pytest.skip(f"{row['source']} is not here: synthetic (its golden folder is checked "
                    "above) or in ../shared, which is absent")
    text = decode(path.read_bytes())
    read = read_solver_text if row["stage"] == "upgrade_solver_proto_text" else read_net_text
    if row["category"] in ("check_failed", "upgrade_refused"):
        with pytest.raises(UpgradeError):
            read(text, str(path))
        return
    assert row["category"] == "parse"
    if row["format"] == "mixed":
        # we look for mixed `layer`/`layers` before parsing: the refusal names both kinds
        with pytest.raises(UpgradeError, match="cannot mix"):
            read(text, str(path))
        return
    m = _CAFFE_PARSE.search(row["error"])
    assert m is not None, row["error"]
    line, message, field = int(m.group(1)), m.group(3), m.group(4)
    owner = getattr(caffe_pb2, message).DESCRIPTOR
    if field in owner.fields_by_name:
        read(text, str(path))  # a fork field our schema has
        return
    with pytest.raises(ParseError) as info:
        read(text, str(path))
    assert info.value.line == line
    assert field in info.value.message


def _drop_fork_fields(msg) -> None:
    forks = FORK_FIELDS.get(msg.DESCRIPTOR.name, {})
    for fd, value in msg.ListFields():
        if fd.name in forks:
            msg.ClearField(fd.name)
        elif fd.message_type is not None:
            for sub in value if fd.is_repeated else [value]:
                _drop_fork_fields(sub)


def _blob_shape(blob) -> tuple[list[int], bool]:
    if blob.HasField("shape"):
        return list(blob.shape.dim), False
    return [blob.num, blob.channels, blob.height, blob.width], True


@pytest.mark.shared
@pytest.mark.parametrize("case", BINARY_CASES, ids=[c.name for c in BINARY_CASES])
def test_binary_upgrade_matches_caffe(case: Path) -> None:
    """upgrade_net on a caffemodel parsed as Caffe's ReadProtoFromBinaryFile parses it (the
    V1-binary case upgrades layers and their blobs), against upgrade_net_proto_binary."""
    need_shared(UPGRADE)
    meta = json.loads((case / "meta.json").read_text())
    want = json.loads((case / "out_structure.json").read_text())
    src = CORPUS / meta["source"]
    if not src.exists():
        pytest.skip(f"{src} is not in the corpus")
    raw = caffe_pb2.NetParameter.FromString(src.read_bytes())
    assert needs_upgrade(raw) == (meta["status"] == "upgraded")
    net = upgrade_net(raw)
    assert len(net.layers) == want["n_layers_v1"] == 0
    assert list(net.input) == want["input"] and list(net.input_dim) == want["input_dim"]
    assert [lp.name for lp in net.layer] == [w["name"] for w in want["layer"]]
    for lp, w in zip(net.layer, want["layer"]):
        assert (lp.type, list(lp.bottom), list(lp.top)) == (w["type"], w["bottom"], w["top"])
        assert len(lp.blobs) == len(w["blobs"])
        for blob, wb in zip(lp.blobs, w["blobs"]):
            assert _blob_shape(blob) == (wb["shape"], wb["legacy_4d"])
            data = np.asarray(blob.data, dtype=np.float64)
            assert data.sum() == pytest.approx(wb["sum"], rel=1e-9, abs=1e-9)
            assert np.abs(data).sum() == pytest.approx(wb["abs_sum"], rel=1e-9)
            assert data[:4].tolist() == pytest.approx(wb["first"])
        bare = caffe_pb2.LayerParameter()
        bare.CopyFrom(lp)
        bare.ClearField("blobs")
        _drop_fork_fields(bare)  # BVLC Caffe kept them as unknown fields, unprinted
        # the golden prints the layer with python protobuf's text format
        assert text_format.MessageToString(bare) == w["text_without_blobs"]
