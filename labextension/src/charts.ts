/**
 * Pictures drawn as SVG elements (no chart library, no markup strings): metric lines,
 * the stage timeline and the lineage graph. Labels go in as text nodes.
 */
import { Point, Row } from './api';
import { formatDuration, formatValue, h, s } from './dom';

/** Colours that stay apart for up to 8 runs; more runs reuse them. */
export const PALETTE = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf'
];

export interface Series {
  label: string;
  points: Point[];
}

/** One metric over steps, one line per series, with axis ends labelled and a legend. */
export function lineChart(title: string, series: Series[]): HTMLElement {
  const width = 280;
  const height = 140;
  const left = 44;
  const bottom = 20;
  const top = 8;
  const all = series.flatMap(one => one.points);
  const steps = all.map(p => p.step);
  const values = all.map(p => p.value);
  const [x0, x1] = [Math.min(...steps), Math.max(...steps)];
  let [y0, y1] = [Math.min(...values), Math.max(...values)];
  if (y0 === y1) {
    [y0, y1] = [y0 - 1, y1 + 1];
  }
  const x = (step: number) =>
    left + (x1 === x0 ? 0.5 : (step - x0) / (x1 - x0)) * (width - left - 8);
  const y = (value: number) =>
    top + (1 - (value - y0) / (y1 - y0)) * (height - top - bottom);
  const svg = s(
    'svg',
    {
      class: 'mlops-chart',
      viewBox: `0 0 ${width} ${height}`,
      role: 'img'
    },
    s('title', {}, `${title} by step`),
    s('line', { x1: left, y1: top, x2: left, y2: height - bottom, class: 'mlops-axis' }),
    s('line', {
      x1: left,
      y1: height - bottom,
      x2: width - 8,
      y2: height - bottom,
      class: 'mlops-axis'
    }),
    s('text', { x: left - 4, y: top + 8, 'text-anchor': 'end' }, formatValue(y1)),
    s('text', { x: left - 4, y: height - bottom, 'text-anchor': 'end' }, formatValue(y0)),
    s('text', { x: left, y: height - 4 }, `step ${x0}`),
    s('text', { x: width - 8, y: height - 4, 'text-anchor': 'end' }, `${x1}`)
  );
  series.forEach((one, index) => {
    const colour = PALETTE[index % PALETTE.length];
    const ordered = [...one.points].sort((a, b) => a.step - b.step);
    const path = ordered
      .map((p, i) => `${i ? 'L' : 'M'}${x(p.step).toFixed(1)},${y(p.value).toFixed(1)}`)
      .join(' ');
    svg.appendChild(s('path', { d: path, fill: 'none', stroke: colour, 'stroke-width': 2 }));
    for (const p of ordered) {
      svg.appendChild(
        s(
          'circle',
          { cx: x(p.step).toFixed(1), cy: y(p.value).toFixed(1), r: 2.5, fill: colour },
          s('title', {}, `${one.label}: step ${p.step} = ${formatValue(p.value)}`)
        )
      );
    }
  });
  const legend =
    series.length > 1
      ? h(
          'div',
          { class: 'mlops-legend' },
          ...series.map((one, index) =>
            h(
              'span',
              {},
              h('i', { style: `background:${PALETTE[index % PALETTE.length]}` }),
              one.label
            )
          )
        )
      : null;
  return h('figure', { class: 'mlops-figure' }, h('figcaption', {}, title), svg, legend);
}

/** Tracked cells as bars on a time axis, coloured and labelled by stage. */
export function stageTimeline(cells: Row[]): HTMLElement {
  const timed = cells.filter(c => typeof c.start_time === 'string');
  if (!timed.length) {
    return h('p', { class: 'mlops-empty' }, 'no tracked cells');
  }
  const time = (value: unknown) => new Date(`${String(value).replace(' ', 'T')}Z`).getTime();
  const start = Math.min(...timed.map(c => time(c.start_time)));
  const ends = timed.map(c =>
    c.end_time ? time(c.end_time) : time(c.start_time) + 1000 * Number(c.duration_s || 0)
  );
  const span = Math.max(1, Math.max(...ends) - start);
  const stages = [...new Set(timed.map(c => String(c.stage ?? 'untracked')))];
  const width = 280;
  const label = 70;
  const rowHeight = 18;
  const height = stages.length * rowHeight + 18;
  const svg = s(
    'svg',
    { class: 'mlops-timeline', viewBox: `0 0 ${width} ${height}`, role: 'img' },
    s('title', {}, 'Stage timeline: when each tracked cell ran')
  );
  stages.forEach((stage, row) => {
    svg.appendChild(
      s('text', { x: label - 4, y: row * rowHeight + 13, 'text-anchor': 'end' }, stage)
    );
  });
  timed.forEach((cell, index) => {
    const row = stages.indexOf(String(cell.stage ?? 'untracked'));
    const x = label + ((time(cell.start_time) - start) / span) * (width - label - 4);
    const w = Math.max(2, ((ends[index] - time(cell.start_time)) / span) * (width - label - 4));
    const failed = cell.status === 'error';
    svg.appendChild(
      s(
        'rect',
        {
          x: x.toFixed(1),
          y: row * rowHeight + 3,
          width: w.toFixed(1),
          height: rowHeight - 6,
          rx: 2,
          class: failed ? 'mlops-bar mlops-bar-failed' : 'mlops-bar',
          fill: PALETTE[row % PALETTE.length]
        },
        s(
          'title',
          {},
          `cell ${cell.cell_seq} (${cell.stage ?? 'untracked'}): ` +
            `${formatDuration(cell.duration_s)}${failed ? ', failed' : ''}`
        )
      )
    );
  });
  svg.appendChild(s('text', { x: label, y: height - 2 }, '0 s'));
  svg.appendChild(
    s('text', { x: width - 4, y: height - 2, 'text-anchor': 'end' }, formatDuration(span / 1000))
  );
  return h('figure', { class: 'mlops-figure' }, svg);
}

export interface GraphNode {
  key: string;
  label: string;
  detail: string;
  kind: 'stage' | 'dataset' | 'model';
  layer: number;
  row: number;
}

export interface Graph {
  nodes: GraphNode[];
  edges: [string, string][];
}

/** The layered lineage graph the server laid out: stages and the data that flows between. */
export function lineageGraph(graph: Graph): HTMLElement {
  if (!graph.nodes.length) {
    return h('p', { class: 'mlops-empty' }, 'no data flowed between stages');
  }
  const nodeWidth = 120;
  const nodeHeight = 34;
  const columnGap = 34;
  const rowHeight = 48;
  const layers = Math.max(...graph.nodes.map(n => n.layer)) + 1;
  const rows = Math.max(...graph.nodes.map(n => n.row)) + 1;
  const width = layers * (nodeWidth + columnGap) - columnGap + 8;
  const height = rows * rowHeight + 8;
  const place = new Map<string, [number, number]>();
  for (const node of graph.nodes) {
    place.set(node.key, [4 + node.layer * (nodeWidth + columnGap), 4 + node.row * rowHeight]);
  }
  const svg = s(
    'svg',
    { class: 'mlops-lineage', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img' },
    s('title', {}, 'Lineage: stages and the datasets and models between them'),
    s(
      'defs',
      {},
      s(
        'marker',
        {
          id: 'mlops-arrow',
          viewBox: '0 0 10 10',
          refX: 10,
          refY: 5,
          markerWidth: 6,
          markerHeight: 6,
          orient: 'auto-start-reverse'
        },
        s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'mlops-arrowhead' })
      )
    )
  );
  for (const [from, to] of graph.edges) {
    const [ax, ay] = place.get(from)!;
    const [bx, by] = place.get(to)!;
    const [sx, sy, ex, ey] = [ax + nodeWidth, ay + nodeHeight / 2, bx, by + nodeHeight / 2];
    const bend = (ex - sx) / 2;
    svg.appendChild(
      s('path', {
        d: `M${sx},${sy} C${sx + bend},${sy} ${ex - bend},${ey} ${ex},${ey}`,
        class: 'mlops-edge',
        'marker-end': 'url(#mlops-arrow)'
      })
    );
  }
  for (const node of graph.nodes) {
    const [x, y] = place.get(node.key)!;
    const short = (text: string) => (text.length > 18 ? `${text.slice(0, 17)}…` : text);
    svg.appendChild(
      s(
        'g',
        { class: `mlops-node mlops-node-${node.kind}` },
        s('title', {}, `${node.label} (${node.detail})`),
        s('rect', { x, y, width: nodeWidth, height: nodeHeight, rx: node.kind === 'stage' ? 8 : 2 }),
        s(
          'text',
          { x: x + nodeWidth / 2, y: y + (node.kind === 'stage' ? 21 : 14), 'text-anchor': 'middle' },
          short(node.label)
        ),
        node.kind === 'stage'
          ? null
          : s(
              'text',
              { x: x + nodeWidth / 2, y: y + 28, 'text-anchor': 'middle', class: 'mlops-detail' },
              short(node.detail)
            )
      )
    );
  }
  return h('figure', { class: 'mlops-figure mlops-scroll' }, svg);
}
