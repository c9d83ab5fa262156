"""What is wrong with a net, as found while it is wired (Net::Init): one value per problem.

The rules of Net::Init live once, in ir; they *collect* problems instead of stopping at the
first. The builder raises the first one (:meth:`Problem.error`, with Caffe's wording and
the phase); the linter renders them all, merging the states in which each occurs
(:attr:`Problem.summary` is the text without the phase). Both therefore report the same
code at the same place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from caffe2torch.errors import BuildError


class LayerPlaces(Protocol):
    """Where each layer block is written (io.SourceMap; the linter passes its own view)."""

    def layer(self, i: int) -> Any: ...


@dataclass(frozen=True)
class Place:
    """A file position: the layer block, or the ``k``-th occurrence of one of its fields."""

    path: str | None = None
    line: int | None = None
    col: int | None = None


def locate(source_map: Any, index: int, field: str | None = None, k: int = 0) -> Place:
    """The place of layer ``index`` (or of its ``k``-th ``field``) when ``source_map``
    knows it; the layer's first line when the field is not written (an upgrade made it)."""
    if source_map is None or index < 0:
        return Place()
    try:
        pos = source_map.layer(index)
    except (IndexError, AttributeError):
        return Place(getattr(source_map, "path", None))
    path = getattr(source_map, "path", None)
    if pos is None:
        return Place(path)
    spots = pos.fields.get(field, []) if field else []
    if len(spots) > k:
        return Place(path, spots[k][0], spots[k][1])
    return Place(path, pos.start_line, pos.start_col)


@dataclass(frozen=True)
class Problem:
    """One reason Caffe refuses the net.

    ``code``: the linter's code (lint/codes.py). ``message``: the builder's text (names the
    phase where the finding depends on it); ``summary``: the same finding without the
    phase, which the linter completes with the states it occurs in. ``index``: the layer's
    position in NetParameter.layer (-1: the net as a whole); ``field``/``k``: the
    occurrence of the layer's field the problem is about."""

    code: str
    message: str
    summary: str
    layer: str = ""
    index: int = -1
    field: str | None = None
    k: int = 0
    hint: str | None = None
    phase: str = ""
    place: Place = Place()

    @property
    def key(self) -> tuple[str, int, str | None, int, str]:
        """Identity across states: the same finding in TRAIN and in TEST has one key."""
        return (self.code, self.index, self.field, self.k, self.summary)

    def error(self) -> BuildError:
        """The BuildError the builder raises for this problem."""
        p = self.place
        return BuildError(self.message, hint=self.hint, code=self.code,
                          path=p.path, line=p.line, col=p.col)


def problem(
    code: str,
    message: str,
    *,
    summary: str | None = None,
    layer: str = "",
    index: int = -1,
    field: str | None = None,
    k: int = 0,
    hint: str | None = None,
    phase: str = "",
    source_map: Any = None,
) -> Problem:
    """A Problem placed with ``source_map`` (the summary defaults to the message)."""
    return Problem(code, message, message if summary is None else summary, layer, index,
                   field, k, hint, phase, locate(source_map, index, field, k))


def raise_first(problems: list[Problem]) -> None:
    """The builder's policy: stop at the first problem, as Caffe does."""
    if problems:
        raise problems[0].error()
