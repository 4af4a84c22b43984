"""The pipeline as a picture: stages and the datasets that flow between them.

Drawn from the run's ``cells``, ``datasets`` and ``lineage`` rows: a dataset appears when one
stage wrote it and a later stage read it. The layout is layered (longest path from the
sources), laid out left to right, so it needs no graphviz; Markdown gets a Mermaid block.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field

import pandas as pd

_COLUMN_WIDTH = 190
_ROW_HEIGHT = 58
_NODE_HEIGHT = 38
_MARGIN = 16
_CHAR_WIDTH = 7.0  # 12px sans-serif, a little generous


@dataclass
class Node:
    key: str
    label: str
    detail: str
    kind: str  # "stage", "dataset" or "model"
    layer: int = 0
    row: int = 0
    inputs: list[str] = field(default_factory=list)


@dataclass
class Graph:
    nodes: dict[str, Node]
    edges: list[tuple[str, str]]


def build_graph(
    cells: pd.DataFrame, datasets: pd.DataFrame, lineage: pd.DataFrame, models: pd.DataFrame
) -> Graph:
    """Stage nodes in order of first execution; datasets and models that cross stages."""
    stage_of = {
        int(row.cell_seq): row.stage for row in cells.itertuples() if isinstance(row.stage, str)
    }
    order: list[str] = []
    for seq in sorted(stage_of):
        if stage_of[seq] not in order:
            order.append(stage_of[seq])
    info = {row.dataset_id: row for row in datasets.itertuples()}
    writer: dict[str, str] = {}
    readers: dict[str, list[str]] = {}
    for row in lineage.sort_values("cell_seq").itertuples():
        stage = stage_of.get(int(row.cell_seq))
        if stage is None or row.dataset_id not in info:
            continue
        if row.direction == "out":
            writer.setdefault(row.dataset_id, stage)
        else:
            readers.setdefault(row.dataset_id, [])
            if stage not in readers[row.dataset_id]:
                readers[row.dataset_id].append(stage)
    nodes = {f"s:{name}": Node(f"s:{name}", name, "stage", "stage") for name in order}
    edges: list[tuple[str, str]] = []
    for dataset_id, source in writer.items():
        later = [
            stage
            for stage in readers.get(dataset_id, [])
            if order.index(stage) > order.index(source)
        ]
        if not later:
            continue
        row = info[dataset_id]
        key = f"d:{dataset_id}"
        nodes[key] = Node(key, f"{row.name} v{row.version}", _shape(row), "dataset")
        edges.append((f"s:{source}", key))
        edges += [(key, f"s:{stage}") for stage in later]
    for row in models.itertuples():
        source = stage_of.get(int(row.cell_seq))
        later = [
            stage
            for seq, stage in sorted(stage_of.items())
            if seq > row.cell_seq
            and order.index(stage) > order.index(source or stage)
            and row.name in _names(cells, seq)
        ]
        if source is None or not later:
            continue
        key = f"m:{row.model_id}"
        nodes[key] = Node(key, row.name, row.class_name.rsplit(".", 1)[-1], "model")
        edges.append((f"s:{source}", key))
        edges += [(key, f"s:{stage}") for stage in dict.fromkeys(later)]
    for start, end in edges:
        nodes[end].inputs.append(start)
    _assign_layers(nodes, order, edges)
    return Graph(nodes, edges)


def to_svg(graph: Graph) -> str:
    """An inline SVG (no scripts, no external references) of the layered graph."""
    if not graph.nodes:
        return ""
    width = {key: _node_width(node) for key, node in graph.nodes.items()}
    layers = max(node.layer for node in graph.nodes.values()) + 1
    rows = max(node.row for node in graph.nodes.values()) + 1
    column = [
        max([width[k] for k, n in graph.nodes.items() if n.layer == layer] or [0])
        for layer in range(layers)
    ]
    left = [_MARGIN + sum(column[:layer]) + 40 * layer for layer in range(layers)]
    total_width = left[-1] + column[-1] + _MARGIN
    total_height = _MARGIN * 2 + rows * _ROW_HEIGHT
    place: dict[str, tuple[float, float, float]] = {}
    for key, node in graph.nodes.items():
        x = left[node.layer] + (column[node.layer] - width[key]) / 2
        y = _MARGIN + node.row * _ROW_HEIGHT
        place[key] = (x, y, width[key])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" role="img" '
        f'viewBox="0 0 {total_width:.0f} {total_height:.0f}" width="{total_width:.0f}" '
        f'height="{total_height:.0f}" font-family="sans-serif" font-size="12">',
        "<title>Pipeline: stages and the datasets between them</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#666"/></marker></defs>',
    ]
    for start, end in graph.edges:
        x1, y1, w1 = place[start]
        x2, y2, _ = place[end]
        sx, sy, ex, ey = x1 + w1, y1 + _NODE_HEIGHT / 2, x2, y2 + _NODE_HEIGHT / 2
        bend = (ex - sx) / 2
        parts.append(
            f'<path d="M{sx:.1f},{sy:.1f} C{sx + bend:.1f},{sy:.1f} {ex - bend:.1f},{ey:.1f} '
            f'{ex:.1f},{ey:.1f}" fill="none" stroke="#666" marker-end="url(#arrow)"/>'
        )
    for key, node in graph.nodes.items():
        x, y, w = place[key]
        if node.kind == "stage":
            shape = (
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{_NODE_HEIGHT}" rx="8" '
                'fill="#dbe8f7" stroke="#2f5d8a"/>'
            )
            text = f'<text x="{x + w / 2:.1f}" y="{y + 23:.1f}" text-anchor="middle" ' \
                f'font-weight="bold">{html.escape(node.label)}</text>'  # fmt: skip
        else:
            fill, stroke = (
                ("#fff8e1", "#a07a00") if node.kind == "dataset" else ("#e8f5e9", "#2e7d32")
            )
            shape = (
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{_NODE_HEIGHT}" rx="2" '
                f'fill="{fill}" stroke="{stroke}" stroke-dasharray="4 2"/>'
            )
            text = (
                f'<text x="{x + w / 2:.1f}" y="{y + 16:.1f}" text-anchor="middle">'
                f"{html.escape(node.label)}</text>"
                f'<text x="{x + w / 2:.1f}" y="{y + 31:.1f}" text-anchor="middle" '
                f'fill="#555" font-size="11">{html.escape(node.detail)}</text>'
            )
        parts.append(f"<g>{shape}{text}</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def to_mermaid(graph: Graph) -> str:
    """A ``flowchart LR`` that GitHub and GitLab render from a fenced ``mermaid`` block."""
    ids = {key: f"n{number}" for number, key in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    for key, node in graph.nodes.items():
        if node.kind == "stage":
            lines.append(f'    {ids[key]}(["{_mermaid_text(node.label)}"])')
        else:
            label = f"{_mermaid_text(node.label)}<br/>{_mermaid_text(node.detail)}"
            shape = ('[/"', '"/]') if node.kind == "dataset" else ('[["', '"]]')
            lines.append(f"    {ids[key]}{shape[0]}{label}{shape[1]}")
    lines += [f"    {ids[start]} --> {ids[end]}" for start, end in graph.edges]
    return "\n".join(lines)


def _assign_layers(nodes: dict[str, Node], order: list[str], edges: list[tuple[str, str]]):
    """Longest path from the sources; rows ordered by the mean row of a node's inputs."""
    outgoing: dict[str, list[str]] = {}
    for start, end in edges:
        outgoing.setdefault(start, []).append(end)
    # stages run in order and datasets only point forward, so stage order is a topological one
    for name in order:
        stage = nodes[f"s:{name}"]
        stage.layer = max([nodes[k].layer + 1 for k in stage.inputs] or [0])
        for dataset in outgoing.get(stage.key, []):
            nodes[dataset].layer = stage.layer + 1
    by_layer: dict[int, list[Node]] = {}
    for node in nodes.values():
        by_layer.setdefault(node.layer, []).append(node)
    for layer in sorted(by_layer):
        members = by_layer[layer]
        members.sort(
            key=lambda n: sum(nodes[k].row for k in n.inputs) / len(n.inputs) if n.inputs else 0
        )
        for row, node in enumerate(members):
            node.row = row


def _node_width(node: Node) -> float:
    longest = max(len(node.label), len(node.detail) if node.kind != "stage" else 0)
    return max(90.0, longest * _CHAR_WIDTH + 24)


def _names(cells: pd.DataFrame, seq: int) -> list[str]:
    """The variable names a cell read (the ``reads`` JSON list)."""
    found = cells.loc[cells["cell_seq"] == seq, "reads"]
    if found.empty or not isinstance(found.iloc[0], str):
        return []
    return json.loads(found.iloc[0])


def _shape(row) -> str:
    rows = "?" if pd.isna(row.n_rows) else int(row.n_rows)
    cols = "?" if pd.isna(row.n_cols) else int(row.n_cols)
    return f"{rows} × {cols}"


def _mermaid_text(text: str) -> str:
    """Mermaid entity codes for the characters that would end or break a quoted label."""
    replaced = text.replace("&", "#amp;").replace('"', "#quot;")
    return re.sub(r"[<>]", lambda m: "#lt;" if m.group() == "<" else "#gt;", replaced)
