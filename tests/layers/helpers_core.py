"""Helpers for the per-type layer tests: build one layer from prototxt text, list a type's
golden cases (skipping cleanly without ../shared)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from torch import nn

from caffe2torch.layers.registry import BuildContext, build_layer, infer_top_shapes
from caffe2torch.proto import caffe_pb2
from tests.support.golden import case_dirs, load_case, run_layer_case


def golden_cases(layer_type: str) -> list[Path]:
    """The golden case folders of one layer type (empty without ../shared)."""
    return [p for p in case_dirs("layers") if p.parent.name == layer_type]


def golden_params(layer_type: str) -> Any:
    """``pytest.mark.parametrize`` over a type's golden cases, ids = variant names; one
    skipped placeholder when ../shared is absent."""
    cases = golden_cases(layer_type)
    if not cases:
        return pytest.mark.parametrize(
            "case_dir",
            [pytest.param(None, marks=pytest.mark.skip(reason="../shared/golden is absent"))],
        )
    return pytest.mark.parametrize("case_dir", cases, ids=[p.name for p in cases])


def run_golden(case_dir: Path) -> None:
    run_layer_case(load_case(case_dir))


def layer_param(text: str) -> Any:
    """A LayerParameter from prototxt text (the body of ``layer { ... }``)."""
    return text_format.Parse(text, caffe_pb2.LayerParameter())


def build(
    text: str,
    bottom_shapes: Sequence[Sequence[int]] = (),
    *,
    num_tops: int | None = None,
    phase: str = "TEST",
    options: dict[str, Any] | None = None,
) -> nn.Module:
    """Build the layer described by ``text`` for bottoms of ``bottom_shapes``; the number of
    tops defaults to the ``top`` fields of the text."""
    layer = layer_param(text)
    ctx = BuildContext(
        layer=layer,
        bottom_shapes=[tuple(s) for s in bottom_shapes],
        num_tops=len(layer.top) if num_tops is None else num_tops,
        phase=phase,
        options=dict(options or {}),
    )
    module = build_layer(ctx)
    module.train(phase == "TRAIN")
    return module


def top_shapes(module: nn.Module, bottom_shapes: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    return infer_top_shapes(module, [tuple(s) for s in bottom_shapes])
