"""A net drawing as SVG without Graphviz: a simple layered layout (Sugiyama's scheme, much
reduced) good enough for the layer graphs of Caffe nets.

1. rank: each node sits one rank after the furthest of its predecessors (longest path);
   an edge over several ranks gets a small virtual node in each rank it crosses, so it
   takes a lane of its own instead of running through the boxes;
2. order: within a rank, nodes are sorted by the mean position of their neighbours in the
   rank before (then after), a few sweeps, to reduce crossings;
3. place: ranks are rows (TB/BT) or columns (LR/RL), centred on the widest one;
4. draw: rounded boxes for layers, octagon-like boxes for blobs, arrows between the
   boxes' borders (through the virtual nodes of long edges).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape as _html_escape
from itertools import pairwise

_CHAR_W = 6.6  # average glyph width of 11px Helvetica
_LINE_H = 14.0
_PAD = 8.0
_RANK_GAP = 46.0
_NODE_GAP = 18.0
_SWEEPS = 4
_LANE = 6.0  # the size of a long edge's virtual node


def escape(text: str) -> str:
    """``&``, ``<`` and ``>`` as entities (xml.sax.saxutils.escape's job, without the
    urllib that module loads at import)."""
    return _html_escape(text, quote=False)


@dataclass(frozen=True)
class Node:
    id: str
    lines: tuple[str, ...]
    fill: str
    blob: bool  # a blob (octagon) rather than a layer (rounded box)


@dataclass
class _Box:
    x: float  # centre
    y: float
    w: float
    h: float


def _ranks(ids: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Longest-path ranks, in topological order (Kahn); a node on a cycle, which a blob
    graph cannot have, would keep rank 0."""
    rank = dict.fromkeys(ids, 0)
    succs: dict[str, list[str]] = {v: [] for v in ids}
    waiting = dict.fromkeys(ids, 0)
    for a, b in edges:
        succs[a].append(b)
        waiting[b] += 1
    ready = [v for v in ids if waiting[v] == 0]
    while ready:
        a = ready.pop()
        for b in succs[a]:
            rank[b] = max(rank[b], rank[a] + 1)
            waiting[b] -= 1
            if waiting[b] == 0:
                ready.append(b)
    return rank


def _order(ids: Sequence[str], edges: Sequence[tuple[str, str]], rank: dict[str, int]
           ) -> list[list[str]]:
    """Nodes per rank, ordered by the barycentre heuristic."""
    layers: list[list[str]] = [[] for _ in range(max(rank.values(), default=-1) + 1)]
    for v in ids:
        layers[rank[v]].append(v)
    preds: dict[str, list[str]] = {v: [] for v in ids}
    succs: dict[str, list[str]] = {v: [] for v in ids}
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)

    def sweep(indices: range, neighbours: dict[str, list[str]], step: int) -> None:
        for r in indices:
            pos = {v: i for i, v in enumerate(layers[r - step])}
            keyed = []
            for i, v in enumerate(layers[r]):
                near = [pos[u] for u in neighbours[v] if u in pos]
                keyed.append((sum(near) / len(near) if near else float(i), v))
            layers[r] = [v for _, v in sorted(keyed, key=lambda kv: kv[0])]

    for _ in range(_SWEEPS):
        sweep(range(1, len(layers)), preds, 1)
        sweep(range(len(layers) - 2, -1, -1), succs, -1)
    return layers


def _size(node: Node) -> tuple[float, float]:
    width = max(len(line) for line in node.lines) * _CHAR_W + 2 * _PAD
    return max(width, 40.0), len(node.lines) * _LINE_H + _PAD


def _split_long_edges(ids: list[str], edges: Sequence[tuple[str, str]], rank: dict[str, int]
                      ) -> tuple[list[tuple[str, str]], dict[tuple[str, str], list[str]]]:
    """Short edges only: a virtual node per rank crossed (added to ``ids`` and ``rank``);
    returns the new edges and, per original edge, its virtual nodes in order."""
    short: list[tuple[str, str]] = []
    routes: dict[tuple[str, str], list[str]] = {}
    for a, b in edges:
        chain = []
        for r in range(rank[a] + 1, rank[b]):
            v = f"~{len(ids)}"
            ids.append(v)
            rank[v] = r
            chain.append(v)
        routes[(a, b)] = chain
        hops = [a, *chain, b]
        short.extend(pairwise(hops))
    return short, routes


def layout(nodes: Sequence[Node], edges: Sequence[tuple[str, str]], rankdir: str
           ) -> tuple[dict[str, _Box], dict[tuple[str, str], list[str]]]:
    """Boxes of the nodes (and of the long edges' virtual nodes), and per edge its
    virtual nodes."""
    ids = [n.id for n in nodes]
    rank = _ranks(ids, edges)
    short, routes = _split_long_edges(ids, edges, rank)
    layers = _order(ids, short, rank)
    size = {n.id: _size(n) for n in nodes}
    size.update({v: (_LANE, _LANE) for v in ids if v not in size})
    across = rankdir in ("LR", "RL")  # ranks are columns
    # extent of each rank along the rank axis, and the rank's length across it
    depth = [max((size[v][0] if across else size[v][1]) for v in layer) if layer else 0.0
             for layer in layers]
    length = [sum((size[v][1] if across else size[v][0]) for v in layer)
              + _NODE_GAP * max(len(layer) - 1, 0) for layer in layers]
    widest = max(length, default=0.0)
    boxes: dict[str, _Box] = {}
    at = 0.0
    for r, layer in enumerate(layers):
        centre = at + depth[r] / 2
        pos = (widest - length[r]) / 2
        for v in layer:
            w, h = size[v]
            extent = h if across else w
            mid = pos + extent / 2
            boxes[v] = _Box(centre, mid, w, h) if across else _Box(mid, centre, w, h)
            pos += extent + _NODE_GAP
        at += depth[r] + _RANK_GAP
    total = at - _RANK_GAP
    for b in boxes.values():  # BT and RL: the same layout, mirrored
        if rankdir == "BT":
            b.y = total - b.y
        elif rankdir == "RL":
            b.x = total - b.x
    return boxes, routes


def _border(box: _Box, toward: _Box) -> tuple[float, float]:
    """Where the line from ``box``'s centre toward ``toward``'s leaves ``box``."""
    dx, dy = toward.x - box.x, toward.y - box.y
    if dx == 0 and dy == 0:
        return box.x, box.y
    sx = (box.w / 2) / abs(dx) if dx else float("inf")
    sy = (box.h / 2) / abs(dy) if dy else float("inf")
    s = min(sx, sy)
    return box.x + dx * s, box.y + dy * s


def _octagon(b: _Box) -> str:
    c = min(6.0, b.h / 3)
    x0, x1, y0, y1 = b.x - b.w / 2, b.x + b.w / 2, b.y - b.h / 2, b.y + b.h / 2
    pts = [(x0 + c, y0), (x1 - c, y0), (x1, y0 + c), (x1, y1 - c), (x1 - c, y1),
           (x0 + c, y1), (x0, y1 - c), (x0, y0 + c)]
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)


def render_svg(nodes: Sequence[Node], edges: Sequence[tuple[str, str]], rankdir: str,
               title: str) -> str:
    """The SVG text of the graph, drawn in ``rankdir`` (LR, TB, BT or RL)."""
    boxes, routes = layout(nodes, edges, rankdir)
    margin, head = 12.0, 28.0
    min_x = min((b.x - b.w / 2 for b in boxes.values()), default=0.0)
    min_y = min((b.y - b.h / 2 for b in boxes.values()), default=0.0)
    for box in boxes.values():
        box.x += margin - min_x
        box.y += margin + head - min_y
    width = max((b.x + b.w / 2 for b in boxes.values()), default=0.0) + margin
    height = max((b.y + b.h / 2 for b in boxes.values()), default=head) + margin
    width = max(width, len(title) * _CHAR_W * 1.2 + 2 * margin)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif">',
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" "
        "markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">"
        "<path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#444\"/></marker></defs>",
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{width / 2:.1f}" y="{margin + 10:.1f}" text-anchor="middle" '
        f'font-size="13">{escape(title)}</text>',
    ]
    for src, dst in edges:
        via = [boxes[v] for v in routes[(src, dst)]]
        start = _border(boxes[src], via[0] if via else boxes[dst])
        end = _border(boxes[dst], via[-1] if via else boxes[src])
        points = [start, *((v.x, v.y) for v in via), end]
        out.append('<polyline points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
                   + '" fill="none" stroke="#444" stroke-width="1" '
                   'marker-end="url(#arrow)"/>')
    for n in nodes:
        b = boxes[n.id]
        out.append(f'<g id="{escape(n.id)}" class="{"blob" if n.blob else "layer"}">')
        if n.blob:
            out.append(f'<polygon points="{_octagon(b)}" fill="{n.fill}" stroke="#555"/>')
        else:
            out.append(f'<rect x="{b.x - b.w / 2:.1f}" y="{b.y - b.h / 2:.1f}" '
                       f'width="{b.w:.1f}" height="{b.h:.1f}" rx="6" fill="{n.fill}" '
                       'stroke="#555"/>')
        top = b.y - (len(n.lines) - 1) * _LINE_H / 2 + 4
        for k, line in enumerate(n.lines):
            size = 11 if k == 0 else 10
            out.append(f'<text x="{b.x:.1f}" y="{top + k * _LINE_H:.1f}" text-anchor="middle" '
                       f'font-size="{size}">{escape(line)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
