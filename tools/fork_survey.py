"""Survey: nets of Caffe forks read with and without the fork's own caffe.proto.

For each fork below (none of them in ../shared/corpus), its ``src/caffe/proto/caffe.proto``
and a few of its real prototxt files are taken from local mirrors of the repositories (bare
git directories, e.g. what ``git clone --mirror`` makes, named ``owner+name``); nothing is
copied into this repository. Each file is then

* read with ``proto=`` (parse), linted with it (no crash), built in every phase it declares;
* read without it (parse, upgrade, ``info``, lint), and built;

and docs/forks.md gets the table. A build that needs data (a Data layer's channels) gets
the shapes the error asks for (batch, 3, crop or 224, crop or 224 for images, batch for
labels); a layer type nobody registered must fail with its name and the plug-in hint.

    python tools/fork_survey.py --mirrors /path/to/mirrors --out docs/forks.md
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

# (label, repository[@branch] of the proto, path of caffe.proto,
#  [(repository, prototxt path[, input shapes the net needs, as --input-shape gives])])
SURVEY: list[tuple[str, str, str, list[tuple[Any, ...]]]] = [
    ("SegNet", "alexgkendall/caffe-segnet", "src/caffe/proto/caffe.proto", [
        ("alexgkendall/SegNet-Tutorial", "Example_Models/segnet_pascal.prototxt"),
        ("alexgkendall/SegNet-Tutorial", "Example_Models/bayesian_segnet_camvid.prototxt"),
        ("alexgkendall/SegNet-Tutorial", "Example_Models/segnet_basic_camvid.prototxt"),
        ("alexgkendall/SegNet-Tutorial", "Models/bayesian_segnet_basic_train.prototxt",
         {"data": [4, 3, 360, 480], "label": [4, 1, 360, 480]}),
    ]),
    ("ENet", "TimoSaemann/caffe-enet", "src/caffe/proto/caffe.proto", [
        ("TimoSaemann/ENet", "prototxts/enet_deploy.prototxt"),
        ("TimoSaemann/ENet", "prototxts/enet_deploy_final.prototxt"),
        ("TimoSaemann/ENet", "prototxts/enet_train_encoder_decoder.prototxt"),
    ]),
    ("Fast R-CNN", "rbgirshick/caffe-fast-rcnn@fast-rcnn", "src/caffe/proto/caffe.proto", [
        ("rbgirshick/fast-rcnn", "models/CaffeNet/test.prototxt"),
        ("rbgirshick/fast-rcnn", "models/CaffeNet/train.prototxt"),
        ("rbgirshick/fast-rcnn", "models/VGG16/test.prototxt"),
    ]),
    ("R-FCN", "daijifeng001/caffe-rfcn", "src/caffe/proto/caffe.proto", [
        ("daijifeng001/R-FCN", "models/rfcn_prototxts/ResNet-50L_res3a/test.prototxt"),
        ("daijifeng001/R-FCN", "models/rfcn_prototxts/ResNet-50L_OHEM_res3a/train_val.prototxt"),
        ("daijifeng001/R-FCN", "models/rfcn_prototxts/ResNet-101L_res3a/test.prototxt"),
    ]),
    ("SENet", "BVLC/caffe", "src/caffe/proto/caffe.proto", [
        ("hujie-frank/SENet", "models/SE-ResNet-50.prototxt"),
        ("hujie-frank/SENet", "models/SE-BN-Inception.prototxt"),
        ("hujie-frank/SENet", "models/SE-ResNeXt-50.prototxt"),
    ]),
    ("video triplet", "xiaolonw/caffe-video_triplet", "src/caffe/proto/caffe.proto", [
        ("xiaolonw/caffe-video_triplet", "rank_scripts/rank_alexnet/imagenet_train.prototxt"),
        ("xiaolonw/caffe-video_triplet", "rank_scripts/rank_alexnet/unsup_net_deploy.prototxt"),
    ]),
    ("TSN", "yjxiong/caffe", "src/caffe/proto/caffe.proto", [
        ("yjxiong/temporal-segment-networks",
         "models/ucf101/tsn_bn_inception_rgb_deploy.prototxt"),
        ("yjxiong/temporal-segment-networks",
         "models/ucf101/tsn_bn_inception_flow_train_val.prototxt"),
        ("yjxiong/caffe", "models/action_recognition/vgg_16_rgb_train_val_fast.prototxt"),
        ("yjxiong/caffe", "models/action_recognition/cuhk_action_spatial_vgg_16_deploy.prototxt"),
    ]),
    ("NVIDIA Caffe", "NVIDIA/caffe", "src/caffe/proto/caffe.proto", [
        ("NVIDIA/caffe", "examples/kitti/detectnet_network.prototxt"),
        ("NVIDIA/caffe", "classification/model/deploy.prototxt"),
        ("NVIDIA/caffe", "examples/faceboxes/SSD.prototxt"),
    ]),
    ("caffe-windows (NormFace)", "happynear/caffe-windows", "src/caffe/proto/caffe.proto", [
        ("happynear/caffe-windows", "src/caffe/test/normalize_layer.prototxt"),
        ("happynear/caffe-windows", "src/caffe/test/flip_layer.prototxt"),
        ("happynear/caffe-windows", "src/caffe/test/inner_distance_layer.prototxt"),
        ("happynear/caffe-windows", "src/caffe/test/general_constrastive_layer.prototxt"),
    ]),
    ("DeepLab", "xmyqsh/deeplab-v2", "src/caffe/proto/caffe.proto", [
        # DeepLab v1's 3-top MemoryData (v2 has 2): replaced by inputs, as a user would
        ("martinkersner/train-DeepLab", "DeepLab-LargeFOV/deploy21.prototxt",
         {"data": [1, 3, 505, 505], "label": [1, 1, 505, 505], "data_dim": [1, 1, 1, 2]}),
        ("martinkersner/train-DeepLab", "DeepLab-LargeFOV/deploy4.prototxt",
         {"data": [1, 3, 505, 505], "label": [1, 1, 505, 505], "data_dim": [1, 1, 1, 2]}),
    ]),
]


def git_dir(mirrors: str, repo: str) -> str:
    base = os.path.join(mirrors, repo.replace("/", "+"), "repo")
    for cand in (base, os.path.join(base, ".git")):
        if os.path.isdir(os.path.join(cand, "objects")):
            return cand
    raise SystemExit(f"no mirror of {repo} under {mirrors} (expected {base})")


def extract(mirrors: str, repo: str, path: str, into: str) -> str:
    repo, _, ref = repo.partition("@")
    data = subprocess.run(["git", "-C", git_dir(mirrors, repo), "show",
                           f"{ref or 'HEAD'}:{path}"], check=True, capture_output=True).stdout
    out = os.path.join(into, repo.replace("/", "+"), path)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "wb") as f:
        f.write(data)
    return out


@dataclass
class Row:
    label: str
    repo: str
    files: int = 0
    parse_p: int = 0
    lint_p: int = 0
    build_p: int = 0
    plugin_p: int = 0  # failed on an unregistered type with the plug-in hint
    parse: int = 0
    upgrade: int = 0
    info: int = 0
    lint: int = 0
    build: int = 0
    reasons: list[str] = field(default_factory=list)


_MISSING = re.compile(r"top\(s\) still without a shape: ([\w/, .-]+)$")


def _guess_shapes(net_param, tops: list[str]) -> dict[str, list[int]]:
    """Shapes for data tops a build asked for: images (batch, 3, crop, crop), labels (batch)."""
    out: dict[str, list[int]] = {}
    for layer in net_param.layer:
        for k, top in enumerate(layer.top):
            if top not in tops:
                continue
            batch = 1
            for p in ("data_param", "image_data_param", "window_data_param", "hdf5_data_param"):
                if layer.HasField(p) and getattr(layer, p).batch_size:
                    batch = int(getattr(layer, p).batch_size)
            crop = int(layer.transform_param.crop_size) or 224
            out[top] = [batch, 3, crop, crop] if k == 0 else [batch]
    for top in tops:
        out.setdefault(top, [1])
    return out


def build_all(path: str, proto: str | None,
              given: dict[str, list[int]] | None = None) -> tuple[bool, str]:
    """Build every declared phase; (ok, why not). A type nobody registered counts as ok
    when the error names it and gives the plug-in hint ("plugin: TYPE")."""
    import caffe2torch as c2t
    from caffe2torch.errors import CaffeError
    from caffe2torch.io.text import read_net
    from caffe2torch.ir.netstate import declared_phases

    net_param = read_net(path, proto)
    for phase in declared_phases(net_param.layer):
        shapes: dict[str, list[int]] = dict(given or {})
        for _ in range(4):
            try:
                c2t.load_net(path, phase=phase, input_shapes=shapes or None, proto=proto)
                break
            except CaffeError as e:
                m = _MISSING.search(e.message)
                if m:
                    shapes.update(_guess_shapes(net_param, [t.strip() for t in
                                                            m.group(1).split(",")]))
                    continue
                hint = e.hint or ""
                if "unknown layer type" in e.message and "register_layer" in hint:
                    t = re.search(r'unknown layer type "([^"]+)"', e.message)
                    return False, f"plugin: {t.group(1) if t else '?'}"
                if "Python layers are refused" in e.message:
                    return False, "plugin: Python (refused: user code; --allow-python-layers)"
                return False, f"{phase}: {e.message}"[:160]
    return True, ""


def survey(mirrors: str) -> list[Row]:
    from caffe2torch.cli.main import main as cli
    from caffe2torch.io.text import read_net, read_text, upgrade_text
    from caffe2torch.lint.context import Options
    from caffe2torch.lint.engine import lint_file

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, prepo, ppath, nets in SURVEY:
            row = Row(label, prepo)
            proto = extract(mirrors, prepo, ppath, os.path.join(tmp, "protos"))
            for repo, npath, *given in nets:
                shapes = given[0] if given else None
                path = extract(mirrors, repo, npath, tmp)
                name = os.path.basename(npath)
                row.files += 1
                try:
                    read_net(path, proto)
                    row.parse_p += 1
                except Exception as e:  # a survey records every failure
                    row.reasons.append(f"{name}: parse with proto: {e}"[:200])
                try:
                    lint_file(path, Options(proto=proto))
                    row.lint_p += 1
                except Exception as e:
                    row.reasons.append(f"{name}: lint with proto crashed: {e!r}"[:200])
                try:
                    ok, why = build_all(path, proto, shapes)
                except Exception as e:
                    ok, why = False, f"crash {e!r}"[:160]
                if ok:
                    row.build_p += 1
                elif why.startswith("plugin: "):
                    row.plugin_p += 1
                    row.reasons.append(f"{name}: unregistered type {why[8:]} (plug-in hint)")
                else:
                    row.reasons.append(f"{name}: build with proto: {why}")
                # without the fork's schema
                try:
                    read_net(path)
                    row.parse += 1
                    upgrade_text(read_text(path), path)
                    row.upgrade += 1
                except Exception as e:
                    row.reasons.append(f"{name}: read without proto: {e}"[:200])
                with contextlib.redirect_stdout(io.StringIO()), \
                        contextlib.redirect_stderr(io.StringIO()):
                    # exit 1: the table is printed but the net does not build (the
                    # build column says why); 2 would be a file info cannot read
                    if cli(["info", path]) in (0, 1):
                        row.info += 1
                    try:
                        lint_file(path)
                        row.lint += 1
                    except Exception as e:
                        row.reasons.append(f"{name}: lint crashed: {e!r}"[:200])
                try:
                    ok2, _ = build_all(path, None, shapes)
                except Exception:
                    ok2 = False
                row.build += ok2
            rows.append(row)
    return rows


def render(rows: list[Row], seconds: float) -> str:
    head = [
        "# Nets of Caffe forks",
        "",
        "Generated by `python tools/fork_survey.py --mirrors DIR --out docs/forks.md` from "
        "local mirrors of the repositories below (none of them is in the shared corpus; "
        "their files are not copied here). Each net is read with the fork's own "
        "`src/caffe/proto/caffe.proto` (`--proto`) and without it; *build* builds every "
        "phase the net declares (data tops a build cannot size get (batch, 3, crop, crop) "
        "and (batch)). *plug-in* counts nets that stop on a layer type nobody registered, "
        "with its name and the hint to register it.",
        "",
        "| fork | proto from | files | parse --proto | lint --proto | build --proto "
        "| plug-in | parse | upgrade | info | lint | build |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        head.append(f"| {r.label} | {r.repo} | {r.files} | {r.parse_p} | {r.lint_p} | "
                    f"{r.build_p} | {r.plugin_p} | {r.parse} | {r.upgrade} | {r.info} | "
                    f"{r.lint} | {r.build} |")
    tot = Row("total", "")
    for r in rows:
        for k in ("files", "parse_p", "lint_p", "build_p", "plugin_p", "parse", "upgrade",
                  "info", "lint", "build"):
            setattr(tot, k, getattr(tot, k) + getattr(r, k))
    head.append(f"| **total** | {len(rows)} forks | {tot.files} | {tot.parse_p} | "
                f"{tot.lint_p} | {tot.build_p} | {tot.plugin_p} | {tot.parse} | "
                f"{tot.upgrade} | {tot.info} | {tot.lint} | {tot.build} |")
    head += ["", "## Reasons", ""]
    for r in rows:
        for why in r.reasons:
            head.append(f"- {r.label}: {why}".replace("\n", " "))
    head += ["", f"({len(rows)} forks, {tot.files} files, {seconds:.0f} s.)", ""]
    return "\n".join(head)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mirrors", required=True, help="folder of owner+name/repo git mirrors")
    p.add_argument("--out", help="write the markdown table here (default: stdout)")
    args = p.parse_args(argv)
    start = time.perf_counter()
    rows = survey(args.mirrors)
    text = render(rows, time.perf_counter() - start)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
