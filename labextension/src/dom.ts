/**
 * Small DOM helpers. Text always goes in through textContent, never innerHTML, so a run
 * named `<img src=x onerror=alert(1)>` shows exactly those characters.
 */

export type Child = Node | string | number | null | undefined | false;

export interface Props {
  class?: string;
  title?: string;
  [attribute: string]: string | number | boolean | undefined | EventListener;
}

function apply(node: Element, props: Props, children: Child[]): void {
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === false) {
      continue;
    }
    if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else if (value === true) {
      node.setAttribute(key, '');
    } else {
      node.setAttribute(key, String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    node.appendChild(
      child instanceof Node ? child : document.createTextNode(String(child))
    );
  }
}

/** An HTML element with attributes, listeners (`onclick`) and text or element children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  apply(node, props, children);
  return node;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element; same rules as `h`. */
export function s(tag: string, props: Props = {}, ...children: Child[]): SVGElement {
  const node = document.createElementNS(SVG_NS, tag) as SVGElement;
  apply(node, props, children);
  return node;
}

/** A number as people read it: thousands separated, at most 4 significant decimals. */
export function formatValue(value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (typeof value === 'number') {
    if (Number.isInteger(value)) {
      return value.toLocaleString('en-US');
    }
    return Number(value.toPrecision(4)).toString();
  }
  if (typeof value === 'object') {
    return JSON.stringify(value);
  }
  return String(value);
}

/** Seconds as "0.8 s", "12 s", "3 min 4 s". */
export function formatDuration(seconds: unknown): string {
  if (typeof seconds !== 'number') {
    return '';
  }
  if (seconds < 10) {
    return `${seconds.toFixed(1)} s`;
  }
  if (seconds < 120) {
    return `${Math.round(seconds)} s`;
  }
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

/** A timestamp from the API as local "YYYY-MM-DD HH:MM:SS" (`short`: "YYYY-MM-DD HH:MM"). */
export function formatTime(value: unknown, short = false): string {
  if (typeof value !== 'string' || !value) {
    return '';
  }
  const date = new Date(value.endsWith('Z') || value.includes('+') ? value : `${value}Z`);
  if (isNaN(date.getTime())) {
    return value;
  }
  const pad = (n: number) => String(n).padStart(2, '0');
  const minutes =
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  return short ? minutes : `${minutes}:${pad(date.getSeconds())}`;
}

/** A key/value table, e.g. params (sorted by key) or run info (in the given order). */
export function keyValueTable(
  values: Record<string, unknown>,
  klass = '',
  sorted = true
): HTMLElement {
  const keys = sorted ? Object.keys(values).sort() : Object.keys(values);
  if (!keys.length) {
    return h('p', { class: 'mlops-empty' }, 'none recorded');
  }
  return h(
    'table',
    { class: `mlops-kv ${klass}` },
    h(
      'tbody',
      {},
      ...keys.map(key =>
        h('tr', {}, h('th', {}, key), h('td', {}, formatValue(values[key])))
      )
    )
  );
}

/** A table of rows with the given columns (headers are the column names). */
export function rowsTable(
  rows: Record<string, unknown>[],
  columns: string[],
  klass = ''
): HTMLElement {
  if (!rows.length) {
    return h('p', { class: 'mlops-empty' }, 'none recorded');
  }
  return h(
    'table',
    { class: `mlops-rows ${klass}` },
    h('thead', {}, h('tr', {}, ...columns.map(c => h('th', {}, c)))),
    h(
      'tbody',
      {},
      ...rows.map(row =>
        h('tr', {}, ...columns.map(c => h('td', {}, formatValue(row[c]))))
      )
    )
  );
}

/** A collapsible section with a heading. */
export function section(title: string, open: boolean, ...children: Child[]): HTMLElement {
  return h(
    'details',
    { class: 'mlops-section', open },
    h('summary', {}, title),
    ...children
  );
}
