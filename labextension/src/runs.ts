/**
 * The runs of one experiment (or of all) in a main-area tab: the runs table with filter,
 * sort, columns and pager, a run's detail, and the comparison of selected runs. One view at
 * a time with a back link, as jupyter-scheduler's "Notebook Jobs" tab does. Plain DOM built
 * with dom.ts; every view is rebuilt from the API's answer.
 */
import { Widget } from '@lumino/widgets';

import { apiUrl, Comparison, query, request, RunDetail, RunsPage, RunSummary } from './api';
import { Graph, lineageGraph, lineChart, stageTimeline } from './charts';
import {
  formatDuration,
  formatTime,
  formatValue,
  h,
  keyValueTable,
  rowsTable,
  section
} from './dom';
import { parseFilter } from './forms';
import { governanceView } from './governance';

/** Lumino's message type, named through Widget (no direct dependency on @lumino/messaging). */
type Message = Parameters<Widget['processMessage']>[0];

export const PAGE_SIZE = 50;
const POLL_MS = 1000;
/** Default columns: at most this many metrics (the primary first) and varying params. */
const DEFAULT_METRICS = 6;
const DEFAULT_PARAMS = 2;

export type RunsViewState =
  | { kind: 'runs' }
  | { kind: 'detail'; runId: string }
  | { kind: 'compare'; runIds: string[] };

/**
 * Whether pipeline processes started from the panel are still going. The left panel sets
 * it; every runs tab keeps refreshing while it is true and once more when it turns false.
 */
export class Activity {
  private active = false;
  private readonly listeners = new Set<() => void>();

  get pipelinesActive(): boolean {
    return this.active;
  }

  set pipelinesActive(value: boolean) {
    if (value !== this.active) {
      this.active = value;
      this.listeners.forEach(listener => listener());
    }
  }

  /** Call `listener` on every change; returns the function that disconnects it. */
  connect(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** The columns a runs tab starts with, and the metric it shows first. */
export interface DefaultColumns {
  columns: string[];
  primary: string | null;
}

/**
 * The primary metric of a page of runs, decided in the experiment with the most runs on
 * the page (the only one, in an experiment's tab):
 * 1. the metric a sweep ranked by: a run with `best_<m>` (the sweep's parent) names `m`;
 * 2. otherwise the metric logged by the most runs, ties going to the metric the log knew
 *    first (its column order).
 */
export function primaryMetric(runs: RunSummary[]): string | null {
  const perExperiment = new Map<string, RunSummary[]>();
  for (const run of runs) {
    perExperiment.set(run.experiment, [...(perExperiment.get(run.experiment) ?? []), run]);
  }
  const biggest = [...perExperiment.values()].sort((a, b) => b.length - a.length)[0] ?? [];
  const ranked = mostLogged(biggest, 'metrics');
  const swept = ranked.find(key => key.startsWith('best_') && ranked.includes(key.slice(5)));
  return swept ? swept.slice(5) : (ranked.find(key => !key.startsWith('best_')) ?? ranked[0] ?? null);
}

/**
 * Default columns: the metrics logged most often (the primary first, at most 6, sweep
 * `best_` summaries left out when the metric itself is there), then up to 2 params that
 * most runs have and whose values differ on the page. The columns picker adds the rest.
 */
export function defaultColumns(runs: RunSummary[]): DefaultColumns {
  const primary = primaryMetric(runs);
  const ranked = mostLogged(runs, 'metrics');
  const metrics = [
    ...(primary ? [primary] : []),
    ...ranked.filter(key => key !== primary && !(key.startsWith('best_') && ranked.includes(key.slice(5))))
  ].slice(0, DEFAULT_METRICS);
  const params = mostLogged(runs, 'params')
    .filter(key => {
      const values = runs.filter(run => key in run.params).map(run => JSON.stringify(run.params[key]));
      return values.length * 2 >= runs.length && new Set(values).size > 1;
    })
    .slice(0, DEFAULT_PARAMS);
  return {
    columns: [...metrics.map(m => `metrics.${m}`), ...params.map(p => `params.${p}`)],
    primary
  };
}

/** Keys by how many runs have them, most first; ties keep their first-seen order. */
function mostLogged(runs: RunSummary[], kind: 'metrics' | 'params'): string[] {
  const counts = new Map<string, number>();
  for (const run of runs) {
    for (const key of Object.keys(run[kind])) {
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return [...counts.keys()].sort((a, b) => counts.get(b)! - counts.get(a)!);
}

export interface RunsViewOptions {
  /** The experiment this tab shows; '' for all experiments. */
  experiment: string;
  activity: Activity;
}

/** The content of a "MLOps runs · <experiment>" main-area tab. */
export class RunsView extends Widget {
  readonly experiment: string;
  private view: RunsViewState = { kind: 'runs' };
  private page = 1;
  private sort = 'start_time';
  private order: 'asc' | 'desc' = 'desc';
  private filterText = '';
  private columns: string[] | null = null; // null: pick defaults from the first page
  private columnsPicked = false; // the user changed the columns: keep them
  private primary: string | null = null;
  private selected = new Set<string>();
  private pollTimer: number | null = null;
  private pollWanted = false;
  private renderToken = 0;
  private readonly activity: Activity;
  private readonly disconnect: () => void;
  private readonly body: HTMLElement;
  private readonly started = performance.now();
  /** Milliseconds from the tab's creation to its first page of runs on screen. */
  firstPageMs: number | null = null;

  constructor(options: RunsViewOptions) {
    super();
    this.experiment = options.experiment;
    this.activity = options.activity;
    this.addClass('mlops-runs-area');
    this.node.dataset.experiment = this.experiment;
    this.body = h('div', { class: 'mlops-area-body' });
    this.node.append(this.body);
    this.disconnect = this.activity.connect(() => this.schedulePoll());
    void this.display(this.view);
  }

  /** "churn", or "all experiments". */
  get label(): string {
    return this.experiment || 'all experiments';
  }

  dispose(): void {
    this.stopPolling();
    this.disconnect();
    super.dispose();
  }

  /** Reload the current view, keeping what is on screen until the answer is there. */
  async refresh(): Promise<void> {
    await this.display(this.view, true);
  }

  showRuns(): void {
    void this.display({ kind: 'runs' });
  }

  showRun(runId: string): void {
    void this.display({ kind: 'detail', runId });
  }

  showCompare(runIds: string[]): void {
    void this.display({ kind: 'compare', runIds });
  }

  /** The table as a just-started run is found: newest first, no filter, first page. */
  showNewest(): void {
    this.filterText = '';
    this.page = 1;
    this.sort = 'start_time';
    this.order = 'desc';
    this.showRuns();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (this.pollWanted && this.pollTimer === null) {
      void this.poll();
    }
  }

  /** Render a view; `quiet` keeps the current content until the new one is ready. */
  async display(view: RunsViewState, quiet = false): Promise<void> {
    this.view = view;
    this.stopPolling();
    const token = ++this.renderToken;
    if (!quiet) {
      this.body.replaceChildren(h('p', { class: 'mlops-loading' }, 'Loading…'));
    }
    this.node.dataset.view = view.kind;
    let content: HTMLElement;
    let active = false;
    try {
      if (view.kind === 'runs') {
        [content, active] = await this.runsView();
      } else if (view.kind === 'detail') {
        [content, active] = await this.detailView(view.runId);
      } else {
        content = await this.compareView(view.runIds);
      }
    } catch (error) {
      content = h('p', { class: 'mlops-error' }, (error as Error).message);
    }
    if (token !== this.renderToken || this.isDisposed) {
      return; // a newer view was asked for meanwhile
    }
    const scrolled = quiet ? this.scrollPositions() : null;
    this.body.replaceChildren(content);
    if (scrolled) {
      this.restoreScroll(scrolled);
    }
    if (view.kind === 'runs' && this.firstPageMs === null) {
      this.firstPageMs = performance.now() - this.started;
      this.node.dataset.firstPageMs = this.firstPageMs.toFixed(0);
    }
    this.pollWanted = active || (this.activity.pipelinesActive && view.kind === 'runs');
    if (this.pollWanted) {
      this.pollTimer = window.setTimeout(() => void this.poll(), POLL_MS);
    }
  }

  /** A refresh in place keeps the table's and the page's scroll where the user left them. */
  private scrollPositions(): [number, number, number] {
    const wrap = this.body.querySelector('.mlops-table-wrap');
    return [this.body.scrollTop, wrap?.scrollTop ?? 0, wrap?.scrollLeft ?? 0];
  }

  private restoreScroll([top, wrapTop, wrapLeft]: [number, number, number]): void {
    this.body.scrollTop = top;
    const wrap = this.body.querySelector('.mlops-table-wrap');
    if (wrap) {
      wrap.scrollTop = wrapTop;
      wrap.scrollLeft = wrapLeft;
    }
  }

  /** Pipelines started or ended: the table may have new rows (a detail keeps its own pace). */
  private schedulePoll(): void {
    if (this.view.kind === 'runs' && this.pollTimer === null && !this.isDisposed) {
      this.pollTimer = window.setTimeout(() => void this.poll(), POLL_MS);
    }
  }

  private stopPolling(): void {
    if (this.pollTimer !== null) {
      window.clearTimeout(this.pollTimer);
      this.pollTimer = null;
    }
  }

  /** While runs are active, refresh the view in place (a hidden tab waits until shown). */
  private async poll(): Promise<void> {
    this.pollTimer = null;
    if (this.isDisposed) {
      return;
    }
    if (!this.isVisible) {
      this.pollWanted = true; // onAfterShow picks it up
      return;
    }
    await this.display(this.view, true);
  }

  // ------------------------------------------------------------------ runs table
  private async runsView(): Promise<[HTMLElement, boolean]> {
    const filter = parseFilter(this.filterText);
    const page = await request<RunsPage>(
      'runs' +
        query({
          experiment: this.experiment,
          page: this.page,
          page_size: PAGE_SIZE,
          sort: this.sort,
          order: this.order,
          filter: filter.length ? JSON.stringify(filter) : undefined
        })
    );
    const columns = this.pickColumns(page.runs);
    const filterBox = h('input', {
      class: 'mlops-filter',
      type: 'search',
      placeholder: 'Filter: words in the name, status=failed, params.lr<0.1, metrics.acc>=0.9',
      title: 'Terms separated by spaces, all must hold; operators = != < <= > >= ~ (contains)'
    });
    filterBox.value = this.filterText;
    filterBox.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        try {
          parseFilter(filterBox.value);
        } catch (error) {
          filterError.textContent = (error as Error).message;
          return;
        }
        this.filterText = filterBox.value;
        this.page = 1;
        this.showRuns();
      }
    });
    const filterError = h('div', { class: 'mlops-error mlops-filter-error' });
    const compare = h('button', {
      class: 'mlops-compare',
      onclick: () => this.showCompare([...this.selected])
    });
    const countSelected = () => {
      compare.textContent = `Compare (${this.selected.size})`;
      compare.disabled = this.selected.size < 2;
    };
    countSelected();
    const anyRunning = page.runs.some(run => run.status === 'running');
    const first = (page.page - 1) * page.page_size + 1;
    const last = first + page.runs.length - 1;
    const pager = h(
      'div',
      { class: 'mlops-pager' },
      h('button', { class: 'mlops-prev', disabled: page.page <= 1, onclick: () => this.turn(-1) }, '‹ Prev'),
      h(
        'span',
        { class: 'mlops-count' },
        page.total
          ? `${first.toLocaleString('en-US')}–${last.toLocaleString('en-US')} of ${page.total.toLocaleString('en-US')}`
          : '0 runs'
      ),
      h('button', { class: 'mlops-next', disabled: last >= page.total, onclick: () => this.turn(1) }, 'Next ›')
    );
    const table = page.runs.length
      ? this.runsTable(page.runs, columns, countSelected)
      : h(
          'p',
          { class: 'mlops-empty' },
          this.filterText
            ? 'No run matches the filter.'
            : 'No runs yet. Track a notebook (%load_ext mlops_nb, then %mlops track) or use Run pipeline.'
        );
    const view = h(
      'div',
      { class: 'mlops-runs' },
      h('h2', { class: 'mlops-area-title' }, this.experiment ? `Runs of ${this.experiment}` : 'Runs of all experiments'),
      h('div', { class: 'mlops-row mlops-runs-tools' }, filterBox, this.columnPicker(page.runs, columns), compare),
      filterError,
      h('div', { class: 'mlops-table-wrap' }, table),
      pager
    );
    return [view, anyRunning];
  }

  private turn(step: number): void {
    this.page = Math.max(1, this.page + step);
    this.showRuns();
  }

  /**
   * The chosen param/metric columns; defaults (see defaultColumns) from the first page with
   * runs, picked again while they hold no metric (the first runs may not have logged any).
   */
  private pickColumns(runs: RunSummary[]): string[] {
    const noMetric = !(this.columns ?? []).some(c => c.startsWith('metrics.'));
    if (!this.columnsPicked && noMetric && runs.length) {
      const defaults = defaultColumns(runs);
      this.columns = defaults.columns;
      this.primary = defaults.primary;
    }
    return this.columns ?? [];
  }

  private columnPicker(runs: RunSummary[], chosen: string[]): HTMLElement {
    const keys = new Set(chosen);
    for (const run of runs) {
      Object.keys(run.metrics).forEach(k => keys.add(`metrics.${k}`));
      Object.keys(run.params).forEach(k => keys.add(`params.${k}`));
    }
    const boxes = [...keys].sort().map(key => {
      const box = h('input', { type: 'checkbox', value: key });
      box.checked = chosen.includes(key);
      box.addEventListener('change', () => {
        this.columnsPicked = true;
        const now = (this.columns ?? []).filter(k => k !== key);
        this.columns = box.checked ? [...now, key] : now; // a new column goes last
        void this.display({ kind: 'runs' }, true);
      });
      return h('label', {}, box, key);
    });
    return h(
      'details',
      { class: 'mlops-columns' },
      h('summary', {}, 'Columns'),
      boxes.length
        ? h('div', { class: 'mlops-columns-list' }, ...boxes)
        : h('p', {}, 'no params or metrics on this page')
    );
  }

  private runsTable(runs: RunSummary[], columns: string[], onSelect: () => void): HTMLElement {
    const header = (label: string, field: string, klass = '') => {
      const active = this.sort === field;
      const primary = field === `metrics.${this.primary}`;
      return h(
        'th',
        {
          class: [klass, active ? `mlops-sorted mlops-${this.order}` : '', primary ? 'mlops-primary' : '']
            .filter(Boolean)
            .join(' '),
          title: primary ? `Sort by ${field} (the primary metric)` : `Sort by ${field}`,
          'data-field': field,
          onclick: () => {
            this.order = active && this.order === 'desc' ? 'asc' : 'desc';
            this.sort = field;
            this.page = 1;
            this.showRuns();
          }
        },
        h('span', { class: 'mlops-clip' }, label),
        active ? (this.order === 'desc' ? ' ▼' : ' ▲') : ''
      );
    };
    const withStage = runs.some(run => run.stage);
    const head = h(
      'tr',
      {},
      h('th', { class: 'mlops-select-cell' }, ''),
      header('run', 'name'),
      header('status', 'status'),
      header('started', 'start_time'),
      header('duration', 'duration_s', 'mlops-number'),
      withStage ? header('stage', 'stage') : null,
      ...columns.map(c => header(c.replace(/^(params|metrics)\./, ''), c, c.startsWith('metrics.') ? 'mlops-number' : ''))
    );
    const rows = runs.map(run => {
      const box = h('input', { type: 'checkbox', title: 'Select for compare', class: 'mlops-select' });
      box.checked = this.selected.has(run.run_id);
      box.addEventListener('click', event => event.stopPropagation());
      box.addEventListener('change', () => {
        if (box.checked) {
          this.selected.add(run.run_id);
        } else {
          this.selected.delete(run.run_id);
        }
        onSelect();
      });
      const cell = (column: string) => {
        const [kind, ...rest] = column.split('.');
        const key = rest.join('.');
        if (kind === 'metrics') {
          const primary = key === this.primary ? ' mlops-primary' : '';
          return h('td', { class: `mlops-number${primary}` }, formatValue(run.metrics[key]));
        }
        const text = formatValue(run.params[key]);
        return h('td', { class: 'mlops-param' }, h('span', { class: 'mlops-clip', title: text }, text));
      };
      const name = run.name || run.run_id.slice(0, 8);
      return h(
        'tr',
        {
          class: `mlops-run mlops-status-${run.status}`,
          'data-run-id': run.run_id,
          onclick: () => this.showRun(run.run_id)
        },
        h('td', { class: 'mlops-select-cell' }, box),
        h('td', { class: 'mlops-name' }, h('span', { class: 'mlops-clip', title: `${name}\n${run.run_id}` }, name)),
        h('td', { class: 'mlops-status-cell' }, statusBadge(run)),
        h('td', { class: 'mlops-time', title: formatTime(run.start_time) }, formatTime(run.start_time, true)),
        h('td', { class: 'mlops-number' }, formatDuration(run.duration_s)),
        withStage ? h('td', { class: 'mlops-stage' }, run.stage ?? '') : null,
        ...columns.map(cell)
      );
    });
    return h('table', { class: 'mlops-runs-table' }, h('thead', {}, head), h('tbody', {}, ...rows));
  }

  private backLink(): HTMLElement {
    return h('button', { class: 'mlops-back', onclick: () => this.showRuns() }, `‹ Runs of ${this.label}`);
  }

  // ------------------------------------------------------------------ run detail
  private async detailView(runId: string): Promise<[HTMLElement, boolean]> {
    const run = await request<RunDetail & { graph: Graph }>(`runs/${encodeURIComponent(runId)}`);
    const info = run.info;
    const id = String(info.run_id);
    const running = info.status === 'running';
    const docsMessage = h('div', { class: 'mlops-docs-message' });
    const actions = h(
      'div',
      { class: 'mlops-row' },
      this.backLink(),
      run.docs ? docsLink(run.docs, 'Open docs') : null,
      run.notebook && !running
        ? h(
            'button',
            {
              class: 'mlops-generate-docs',
              onclick: () => void generateDocs(run.notebook!, id, docsMessage)
            },
            run.docs ? 'Regenerate docs' : 'Generate docs'
          )
        : null
    );
    const charts = Object.entries(run.metric_history)
      .filter(([, points]) => points.length > 1)
      .map(([key, points]) => lineChart(key, [{ label: key, points }]));
    const facts: Record<string, unknown> = {
      'run id': id,
      experiment: info.experiment,
      status:
        running && run.tags['mlops.progress']
          ? `running, cell ${run.tags['mlops.progress']}` +
            (run.tags['mlops.stage'] ? ` (${run.tags['mlops.stage']})` : '')
          : info.status,
      started: formatTime(info.start_time),
      duration: formatDuration(info.duration_s),
      notebook: info.notebook_path,
      user: info.user,
      host: info.host,
      'git commit': info.git_commit,
      error: info.error
    };
    for (const key of Object.keys(facts)) {
      if (facts[key] === null || facts[key] === undefined || facts[key] === '') {
        delete facts[key];
      }
    }
    const artifacts = run.artifacts.length
      ? h(
          'ul',
          { class: 'mlops-artifacts' },
          ...run.artifacts.map(a =>
            h(
              'li',
              {},
              h(
                'a',
                { href: apiUrl(a.url), download: String(a.name ?? ''), class: 'mlops-artifact' },
                String(a.name ?? a.sha256)
              ),
              ` ${formatValue(a.kind ?? '')} · ${formatBytes(a.size_bytes)}`
            )
          )
        )
      : h('p', { class: 'mlops-empty' }, 'none recorded');
    const view = h(
      'div',
      { class: 'mlops-detail', 'data-run-id': id },
      actions,
      docsMessage,
      h('h2', { class: 'mlops-run-title' }, String(info.name || id.slice(0, 8))),
      keyValueTable(facts, 'mlops-info', false),
      h(
        'div',
        { class: 'mlops-pair' },
        section('Parameters', true, keyValueTable(run.params, 'mlops-params')),
        section('Metrics', true, keyValueTable(run.metrics, 'mlops-metrics'))
      ),
      charts.length ? section('Metric history', true, h('div', { class: 'mlops-charts' }, ...charts)) : null,
      section('Stage timeline', true, stageTimeline(run.cells)),
      section('Lineage', true, lineageGraph(run.graph)),
      section('Artifacts', true, artifacts),
      section('Governance', hasGovernance(run), governanceView(run.governance)),
      section('Models', false, rowsTable(run.models, ['name', 'class_name', 'stage'])),
      section('Datasets', false, rowsTable(run.datasets, ['name', 'version', 'n_rows', 'n_cols', 'fingerprint'])),
      section('Notes', run.notes.length > 0, rowsTable(run.notes, ['cell_seq', 'kind', 'message'])),
      section('Environment', false, rowsTable(run.environment, ['kind', 'name', 'version']))
    );
    return [view, running];
  }

  // ------------------------------------------------------------------ compare
  private async compareView(runIds: string[]): Promise<HTMLElement> {
    const data = await request<Comparison>(`compare${query({ ids: runIds.join(',') })}`);
    const ids = data.runs.map(r => String(r.run_id));
    const label = (id: string) => {
      const run = data.runs.find(r => r.run_id === id);
      return String(run?.name || id.slice(0, 8));
    };
    const head = h('tr', {}, h('th', {}, ''), ...ids.map(id => h('th', { title: id }, label(id))));
    const paramRows = data.params.map(p =>
      h(
        'tr',
        { class: p.differs ? 'mlops-differs' : '' },
        h('th', {}, p.name),
        ...ids.map(id => h('td', {}, formatValue(p.values[id])))
      )
    );
    const metricRows = Object.entries(data.metrics).map(([key, values]) => {
      const numbers = ids.map(id => values[id]).filter((v): v is number => typeof v === 'number');
      const best = !numbers.length ? null : lowerIsBetter(key) ? Math.min(...numbers) : Math.max(...numbers);
      return h(
        'tr',
        {},
        h('th', {}, key),
        ...ids.map(id =>
          h(
            'td',
            { class: values[id] === best && numbers.length > 1 ? 'mlops-best mlops-number' : 'mlops-number' },
            formatValue(values[id])
          )
        )
      );
    });
    const overlays = Object.entries(data.metric_history)
      .filter(([, perRun]) => Object.values(perRun).some(points => points.length > 1))
      .map(([key, perRun]) =>
        lineChart(
          key,
          ids.filter(id => perRun[id]).map(id => ({ label: label(id), points: perRun[id] }))
        )
      );
    return h(
      'div',
      { class: 'mlops-compare-view' },
      h('div', { class: 'mlops-row' }, this.backLink()),
      h('h2', {}, `Comparing ${ids.length} runs`),
      h(
        'div',
        { class: 'mlops-pair' },
        section(
          'Parameters (differences highlighted)',
          true,
          h(
            'table',
            { class: 'mlops-rows mlops-compare-params' },
            h('thead', {}, head),
            h('tbody', {}, ...paramRows)
          )
        ),
        section(
          'Metrics (best in bold)',
          true,
          h(
            'table',
            { class: 'mlops-rows mlops-compare-metrics' },
            h('thead', {}, head.cloneNode(true)),
            h('tbody', {}, ...metricRows)
          )
        )
      ),
      overlays.length ? section('Metric history', true, h('div', { class: 'mlops-charts' }, ...overlays)) : null
    );
  }
}

/** Write the docs of a notebook's run (the latest one when `runId` is undefined). */
export async function generateDocs(
  notebook: string,
  runId: string | undefined,
  message: HTMLElement
): Promise<void> {
  message.classList.remove('mlops-error');
  message.textContent = 'Generating docs…';
  try {
    const answer = await request<{ url: string }>('docs', { notebook, run_id: runId });
    message.replaceChildren('Docs written: ', docsLink(answer.url, 'open'));
  } catch (error) {
    message.classList.add('mlops-error');
    message.textContent = (error as Error).message;
  }
}

/** A link that opens generated docs (an API path) in a new browser tab. */
function docsLink(path: string, label: string): HTMLElement {
  return h('a', { class: 'mlops-docs-link', href: apiUrl(path), target: '_blank', rel: 'noopener' }, label);
}

/** A run's status, with a progress bar while it runs. */
export function statusBadge(run: Pick<RunSummary, 'status' | 'progress'>): HTMLElement {
  if (run.status !== 'running') {
    return h('span', { class: `mlops-badge mlops-badge-${run.status}` }, run.status);
  }
  const [done, total] = (run.progress ?? '').split('/').map(Number);
  const bar = h('progress', { class: 'mlops-progress' });
  if (total) {
    bar.max = total;
    bar.value = done;
  }
  return h(
    'span',
    { class: 'mlops-badge mlops-badge-running', title: run.progress ? `cell ${run.progress}` : 'running' },
    'running',
    run.progress ? ` ${run.progress}` : '',
    bar
  );
}

/** Whether the run recorded a data check, personal data or fairness (the part opens). */
function hasGovernance(run: RunDetail): boolean {
  const g = run.governance;
  return !!g && (g.checks.length > 0 || g.personal_data.length > 0 || g.fairness.length > 0);
}

/** Metrics where smaller wins (losses, errors, times); the rest are scores. */
function lowerIsBetter(key: string): boolean {
  return /loss|error|err$|mse|mae|rmse|latency|_ms$|_s$|time/i.test(key);
}

function formatBytes(value: unknown): string {
  if (typeof value !== 'number') {
    return '';
  }
  const units = ['B', 'KB', 'MB', 'GB'];
  let size = value;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${unit ? size.toFixed(1) : size} ${units[unit]}`;
}
