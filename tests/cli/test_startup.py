"""What starting the CLI loads: `caffe2torch --help` and the help of every verb must not
import torch, OpenCV or ONNX (checked by sys.modules in a fresh interpreter, not by
timing); and the package facade keeps its public names while loading them on first use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import caffe2torch as c2t

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "cv2", "onnx", "onnxruntime", "numpy", "h5py")


def _fresh_json(code: str, expression: str) -> Any:
    """Run ``code`` in a fresh interpreter, then print ``expression`` (about sys.modules)
    as JSON and give it back."""
    probe = f"import sys, json\n{code}\nprint(json.dumps({expression}))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _loaded_after(code: str) -> dict[str, bool]:
    """Which heavy modules a fresh interpreter has loaded after running ``code``."""
    return _fresh_json(code, f"{{m: m in sys.modules for m in {HEAVY!r}}}")


def _cli(argv: list[str]) -> str:
    return ("import contextlib, io\nfrom caffe2torch.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    code = main({argv!r})\nassert code == 0, code")


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["lint", "--help"],
                                  ["train", "--help"], ["export", "--help"]],
                         ids=lambda a: " ".join(a))
def test_help_loads_no_heavy_module(argv: list[str]) -> None:
    loaded = _loaded_after(_cli(argv))
    assert not any(loaded.values()), [m for m, yes in loaded.items() if yes]


def test_importing_the_package_loads_no_heavy_module() -> None:
    loaded = _loaded_after("import caffe2torch; caffe2torch.__version__")
    assert not any(loaded.values()), [m for m, yes in loaded.items() if yes]


def test_a_public_name_loads_what_it_needs() -> None:
    loaded = _loaded_after("import caffe2torch as c2t; c2t.load_net")
    assert loaded["torch"]


# the public surface of ../shared/DESIGN.md
DESIGN_NAMES = ["load_net", "read_net", "read_solver", "read_caffemodel", "upgrade_text",
                "lint", "get_solver", "export_onnx", "register_layer", "layer_fields",
                "CaffeNet", "Solver", "NetState", "CaffeError", "ParseError", "BuildError"]


@pytest.mark.parametrize("name", DESIGN_NAMES)
def test_public_names(name: str) -> None:
    assert name in c2t.__all__
    assert callable(getattr(c2t, name))
    assert name in dir(c2t)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        c2t.nope  # noqa: B018


def test_subpackages_are_reachable_as_attributes() -> None:
    loaded = _loaded_after("import caffe2torch as c2t\nassert c2t.io.read_net is not None")
    assert not loaded["torch"]  # the reader alone


def test_lint_stays_the_function_after_the_subpackage_loads() -> None:
    import caffe2torch.lint.engine  # noqa: F401 (binds nothing over the public name)

    assert c2t.lint is sys.modules["caffe2torch.lint.engine"].lint
    assert sys.modules["caffe2torch.lint"].lint is c2t.lint


def test_one_public_register_layer() -> None:
    import caffe2torch.layers

    assert c2t.register_layer is caffe2torch.layers.register_layer



LINT_FIXTURES = ROOT / "tests" / "lint" / "fixtures"


@pytest.mark.parametrize("fixture", ["layer.prototxt", "graph.prototxt", "legacy_v1.prototxt"])
def test_lint_loads_no_heavy_module(fixture: str) -> None:
    # what lint knows of layer types comes from layers/builtin_types.py, not the builders
    target = str(LINT_FIXTURES / fixture)
    cli = ("import contextlib, io\nfrom caffe2torch.cli.main import main\n"
           "with contextlib.redirect_stdout(io.StringIO()):\n"
           f"    main(['lint', {target!r}])")
    api = f"import caffe2torch as c2t\nassert c2t.lint({target!r})"
    for code in (cli, api):
        loaded = _loaded_after(code)
        assert not any(loaded.values()), [m for m, yes in loaded.items() if yes]


def _modules_after(code: str, prefix: str) -> set[str]:
    """The modules under ``prefix`` a fresh interpreter has loaded after running ``code``."""
    return set(_fresh_json(code, f"sorted(m for m in sys.modules if m.startswith({prefix!r}))"))


VERB_MODULES = {f"caffe2torch.cli.{v}" for v in
                ("upgrade", "info", "lint", "demo", "export", "convert", "draw", "train", "test",
                 "time", "device_query", "plot", "pairs", "triplets", "run", "compare")}


def test_help_imports_no_verb_module() -> None:
    # the verb list of `caffe2torch --help` comes from cli.main.VERBS alone
    assert not _modules_after(_cli(["--help"]), "caffe2torch.cli.") & VERB_MODULES


def test_a_verb_imports_only_its_own_module() -> None:
    target = str(LINT_FIXTURES / "layer.prototxt")
    code = ("import contextlib, io\nfrom caffe2torch.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    main(['lint', {target!r}])")
    assert _modules_after(code, "caffe2torch.cli.") & VERB_MODULES == {"caffe2torch.cli.lint"}
    assert _modules_after(_cli(["info", "--help"]), "caffe2torch.cli.") & VERB_MODULES \
        == {"caffe2torch.cli.info"}


def test_every_verb_of_the_list_has_its_module() -> None:
    from caffe2torch.cli.main import VERBS

    assert {f"caffe2torch.cli.{v}" for v in VERBS} == VERB_MODULES


# what `caffe2torch lint FILE` (a net; no --proto, --fix, --diff, json) does not need: each
# was made lazy for lint's start-up time, which bench/bench_lint.py measures
LINT_NEEDS_NONE_OF = (
    "importlib.metadata",  # plug-ins are looked for by layers.discovery first
    "caffe2torch.io.fork_schema",  # --proto alone compiles a schema (hashlib, descriptor_pb2)
    "google.protobuf.descriptor_pb2",
    "caffe2torch.io.extra",  # fields the schema lacks: the readers keep them aside
    "caffe2torch.io.translate",
    "caffe2torch.ir.sharing",  # the builder's sharing plan
    "caffe2torch.lint.rules_solver",  # solver files alone
    "json",  # --format json / sarif
    "caffe2torch.lint.fix",  # the rewriter of --fix and of the findings that carry a fix
)


def _new_modules_after(code: str) -> set[str]:
    """The modules running ``code`` loads in a fresh interpreter (not those the interpreter's
    start-up, site hooks included, had loaded already)."""
    probe = (f"import sys\nbefore = set(sys.modules)\n{code}\n"
             "new = sorted(set(sys.modules) - before)\nimport json\nprint(json.dumps(new))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("net", ["tests/lint/fixtures/layer.prototxt",
                                 "tests/lint/fixtures/graph.prototxt",
                                 "models/mnist_siamese/train_test.prototxt"])  # no finding
def test_lint_loads_only_what_it_needs(net: str) -> None:
    target = str(ROOT / net)
    code = ("import contextlib, io\nfrom caffe2torch.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    main(['lint', {target!r}])")
    loaded = _new_modules_after(code)
    assert "caffe2torch.lint.engine" in loaded  # the probe did lint
    assert not loaded & set(LINT_NEEDS_NONE_OF)
    if net.startswith("models/"):  # no finding, so no "did you mean" (suggest.close_names)
        assert "difflib" not in loaded


LAZY_PARSER_ARGV = [[], ["--help"], ["-h", "lint"], ["--version", "lint"], ["lnt"], ["--bogus"],
                    ["--bogus", "lint", "x"], ["--", "lint"], ["-1", "lint"], ["-", "lint"],
                    ["lint", "--bogus"], ["lint", "--help"], ["lint", "--format", "nope", "x"],
                    ["lint", "--explain", "C2T001"], ["info"], ["draw", "-h"]]


@pytest.mark.parametrize("argv", LAZY_PARSER_ARGV, ids=lambda a: " ".join(a) or "(none)")
def test_the_lazy_parser_answers_as_the_whole_one(
        argv: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from caffe2torch.cli import main as cli_main

    code = cli_main.main(argv)
    lazy = capsys.readouterr()
    whole = cli_main.build_parser
    monkeypatch.setattr(cli_main, "build_parser", lambda *a, **k: whole())
    assert cli_main.main(argv) == code
    assert capsys.readouterr() == lazy
