/**
 * The "MLOps" left panel: runs table, run detail, compare, Run pipeline and Schedule forms.
 * Plain DOM inside one Lumino widget; every view is rebuilt from the API's answer.
 */
import { Widget } from '@lumino/widgets';

import {
  apiUrl,
  ApiError,
  Comparison,
  Experiment,
  Health,
  Parameter,
  PipelineProcess,
  query,
  request,
  RunDetail,
  RunsPage,
  RunSummary,
  ScheduleResult
} from './api';
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
import { ParameterFields, parseFilter } from './forms';

const PAGE_SIZE = 50;
const POLL_MS = 1000;
const TARGETS = ['cron', 'systemd', 'airflow', 'kubernetes', 'gitlab', 'github', 'jenkins', 'docker'];

type View =
  | { kind: 'runs' }
  | { kind: 'detail'; runId: string }
  | { kind: 'compare'; runIds: string[] }
  | { kind: 'pipeline' }
  | { kind: 'schedule' };

export interface PanelOptions {
  /** The path of the notebook the user is looking at, relative to the server root. */
  currentNotebook: () => string | null;
}

export class MlopsPanel extends Widget {
  private view: View = { kind: 'runs' };
  private experiment = '';
  private page = 1;
  private sort = 'start_time';
  private order: 'asc' | 'desc' = 'desc';
  private filterText = '';
  private columns: string[] | null = null; // null: pick defaults from the first page
  private selected = new Set<string>();
  private pollTimer: number | null = null;
  private pipelinesActive = false;
  private reportedFailures = new Set<number>();
  private renderToken = 0;
  private readonly status: HTMLElement;
  private readonly toolbar: HTMLElement;
  private readonly experiments: HTMLSelectElement;
  private readonly body: HTMLElement;
  /** Milliseconds from the first request to the first page of runs on screen. */
  firstPageMs: number | null = null;

  constructor(private readonly options: PanelOptions) {
    super();
    this.addClass('mlops-panel');
    this.status = h('div', { class: 'mlops-status', role: 'status' }, 'Connecting…');
    this.experiments = h(
      'select',
      {
        class: 'mlops-experiment',
        title: 'Experiment',
        onchange: () => {
          this.experiment = this.experiments.value;
          this.page = 1;
          this.columns = null; // another experiment has other params and metrics
          this.display({ kind: 'runs' });
        }
      },
      h('option', { value: '' }, 'All experiments')
    );
    this.toolbar = h(
      'div',
      { class: 'mlops-toolbar' },
      this.experiments,
      h('button', { class: 'mlops-nav-runs', onclick: () => this.display({ kind: 'runs' }) }, 'Runs'),
      h(
        'button',
        { class: 'mlops-nav-pipeline', onclick: () => this.display({ kind: 'pipeline' }) },
        'Run pipeline'
      ),
      h(
        'button',
        { class: 'mlops-nav-schedule', onclick: () => this.display({ kind: 'schedule' }) },
        'Schedule'
      ),
      h('button', { class: 'mlops-refresh', title: 'Refresh', onclick: () => this.refresh() }, '⟳')
    );
    this.body = h('div', { class: 'mlops-body' });
    this.node.append(
      h('header', {}, h('h2', {}, 'MLOps'), this.status),
      this.toolbar,
      this.body
    );
    this.toolbar.hidden = true;
    void this.start();
  }

  /** Check that the server extension answers before showing anything else. */
  async start(): Promise<void> {
    const started = performance.now();
    let health: Health;
    try {
      health = await request<Health>('health');
    } catch (error) {
      const status = error instanceof ApiError && error.status ? ` (HTTP ${error.status})` : '';
      this.setStatus(
        `The mlops_nb server extension does not answer${status}. Install mlops-nb in the ` +
          'environment that runs JupyterLab, check `jupyter server extension list`, and restart JupyterLab.',
        true
      );
      this.body.replaceChildren(
        h('button', { class: 'mlops-retry', onclick: () => void this.start() }, 'Try again')
      );
      return;
    }
    this.setStatus(
      health.log_exists
        ? `Log: ${health.log}`
        : `No experiment log yet (it will be ${health.log}).`
    );
    this.toolbar.hidden = false;
    await this.loadExperiments();
    await this.display(this.view);
    if (this.firstPageMs === null) {
      this.firstPageMs = performance.now() - started;
      this.node.dataset.firstPageMs = this.firstPageMs.toFixed(0);
    }
  }

  dispose(): void {
    this.stopPolling();
    super.dispose();
  }

  /** Reload the experiments and the current view (the ⟳ button). */
  async refresh(): Promise<void> {
    await this.loadExperiments();
    await this.display(this.view, true);
  }

  /** Show the Run pipeline form for a notebook (used by the notebook toolbar command). */
  showPipeline(): void {
    void this.display({ kind: 'pipeline' });
  }

  private setStatus(text: string, error = false): void {
    this.status.textContent = text;
    this.status.classList.toggle('mlops-error', error);
  }

  private async loadExperiments(): Promise<void> {
    let experiments: Experiment[] = [];
    try {
      experiments = await request<Experiment[]>('experiments');
    } catch (error) {
      this.setStatus(String((error as Error).message), true);
    }
    const keep = this.experiment;
    this.experiments.replaceChildren(
      h('option', { value: '' }, 'All experiments'),
      ...experiments.map(e =>
        h('option', { value: e.experiment }, `${e.experiment} (${e.runs.toLocaleString('en-US')})`)
      )
    );
    this.experiments.value = experiments.some(e => e.experiment === keep) ? keep : '';
    this.experiment = this.experiments.value;
  }

  /** Render a view; `quiet` keeps the current content until the new one is ready. */
  async display(view: View, quiet = false): Promise<void> {
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
      } else if (view.kind === 'compare') {
        content = await this.compareView(view.runIds);
      } else if (view.kind === 'pipeline') {
        content = await this.pipelineView();
      } else {
        content = await this.scheduleView();
      }
    } catch (error) {
      content = h('p', { class: 'mlops-error' }, (error as Error).message);
    }
    if (token !== this.renderToken) {
      return; // a newer view was asked for meanwhile
    }
    this.body.replaceChildren(content);
    if (active || (this.pipelinesActive && view.kind === 'runs')) {
      this.pollTimer = window.setTimeout(() => void this.poll(), POLL_MS);
    }
  }

  private stopPolling(): void {
    if (this.pollTimer !== null) {
      window.clearTimeout(this.pollTimer);
      this.pollTimer = null;
    }
  }

  /** While runs are active, refresh the view in place. */
  private async poll(): Promise<void> {
    this.pollTimer = null;
    if (this.pipelinesActive) {
      try {
        const processes = await request<PipelineProcess[]>('pipeline/runs');
        this.pipelinesActive = processes.some(p => p.state === 'running');
        this.reportFailures(processes);
      } catch {
        this.pipelinesActive = false;
      }
      if (!this.pipelinesActive) {
        await this.loadExperiments(); // a pipeline run may have started a new experiment
      }
    }
    if (!this.isDisposed) {
      await this.display(this.view, true);
    }
  }

  /** Say so when a pipeline process ended in failure (e.g. before its run was recorded). */
  private reportFailures(processes: PipelineProcess[]): void {
    for (const process of processes) {
      if (process.state === 'failed' && !this.reportedFailures.has(process.pid)) {
        this.reportedFailures.add(process.pid);
        const why = process.error ?? `exit code ${process.returncode}`;
        this.setStatus(`Pipeline run of ${process.notebook} (process ${process.pid}) failed: ${why}`, true);
      }
    }
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
        void this.display({ kind: 'runs' });
      }
    });
    const filterError = h('div', { class: 'mlops-error mlops-filter-error' });
    const compare = h('button', {
      class: 'mlops-compare',
      onclick: () => void this.display({ kind: 'compare', runIds: [...this.selected] })
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
        page.total ? `${first.toLocaleString('en-US')}–${last.toLocaleString('en-US')} of ${page.total.toLocaleString('en-US')}` : '0 runs'
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
      filterBox,
      filterError,
      h('div', { class: 'mlops-row' }, this.columnPicker(page.runs, columns), compare),
      h('div', { class: 'mlops-table-wrap' }, table),
      pager
    );
    return [view, anyRunning];
  }

  private turn(step: number): void {
    this.page = Math.max(1, this.page + step);
    void this.display({ kind: 'runs' });
  }

  /** The chosen param/metric columns; by default the first 2 params and 3 metrics seen. */
  private pickColumns(runs: RunSummary[]): string[] {
    if (this.columns === null && runs.length) {
      const params = [...new Set(runs.flatMap(r => Object.keys(r.params)))].slice(0, 2);
      const metrics = [...new Set(runs.flatMap(r => Object.keys(r.metrics)))].slice(0, 3);
      this.columns = [...params.map(p => `params.${p}`), ...metrics.map(m => `metrics.${m}`)];
    }
    return this.columns ?? [];
  }

  private columnPicker(runs: RunSummary[], chosen: string[]): HTMLElement {
    const keys = new Set(chosen);
    for (const run of runs) {
      Object.keys(run.params).forEach(k => keys.add(`params.${k}`));
      Object.keys(run.metrics).forEach(k => keys.add(`metrics.${k}`));
    }
    const boxes = [...keys].sort().map(key => {
      const box = h('input', { type: 'checkbox', value: key });
      box.checked = chosen.includes(key);
      box.addEventListener('change', () => {
        const now = new Set(this.columns ?? []);
        if (box.checked) {
          now.add(key);
        } else {
          now.delete(key);
        }
        this.columns = [...keys].sort().filter(k => now.has(k));
        void this.display({ kind: 'runs' }, true);
      });
      return h('label', {}, box, key);
    });
    return h(
      'details',
      { class: 'mlops-columns' },
      h('summary', {}, 'Columns'),
      boxes.length ? h('div', {}, ...boxes) : h('p', {}, 'no params or metrics on this page')
    );
  }

  private runsTable(runs: RunSummary[], columns: string[], onSelect: () => void): HTMLElement {
    const header = (label: string, field: string) => {
      const active = this.sort === field;
      return h(
        'th',
        {
          class: active ? `mlops-sorted mlops-${this.order}` : '',
          title: `Sort by ${field}`,
          'data-field': field,
          onclick: () => {
            this.order = active && this.order === 'desc' ? 'asc' : 'desc';
            this.sort = field;
            this.page = 1;
            void this.display({ kind: 'runs' });
          }
        },
        label + (active ? (this.order === 'desc' ? ' ▼' : ' ▲') : '')
      );
    };
    const head = h(
      'tr',
      {},
      h('th', {}, ''),
      header('status', 'status'),
      header('run', 'name'),
      header('stage', 'stage'),
      header('started', 'start_time'),
      header('time', 'duration_s'),
      ...columns.map(c => header(c.replace(/^(params|metrics)\./, ''), c))
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
      const value = (column: string) => {
        const [kind, ...rest] = column.split('.');
        const key = rest.join('.');
        return kind === 'params' ? run.params[key] : run.metrics[key];
      };
      return h(
        'tr',
        {
          class: `mlops-run mlops-status-${run.status}`,
          'data-run-id': run.run_id,
          onclick: () => void this.display({ kind: 'detail', runId: run.run_id })
        },
        h('td', {}, box),
        h('td', { class: 'mlops-status-cell' }, statusBadge(run)),
        h(
          'td',
          { class: 'mlops-name', title: `${run.name}\n${run.run_id}` },
          h('span', {}, run.name || run.run_id.slice(0, 8))
        ),
        h('td', {}, run.stage ?? ''),
        h('td', { class: 'mlops-time', title: formatTime(run.start_time) }, formatTime(run.start_time, true)),
        h('td', {}, formatDuration(run.duration_s)),
        ...columns.map(c => h('td', { class: 'mlops-number' }, formatValue(value(c))))
      );
    });
    return h('table', { class: 'mlops-runs-table' }, h('thead', {}, head), h('tbody', {}, ...rows));
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
      h('button', { class: 'mlops-back', onclick: () => void this.display({ kind: 'runs' }) }, '‹ Runs'),
      run.docs
        ? docsLink(run.docs, 'Open docs')
        : null,
      run.notebook && !running
        ? h(
            'button',
            {
              class: 'mlops-generate-docs',
              onclick: () => void this.generateDocs(run.notebook!, id, docsMessage)
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
      status: running && run.tags['mlops.progress']
        ? `running, cell ${run.tags['mlops.progress']}` + (run.tags['mlops.stage'] ? ` (${run.tags['mlops.stage']})` : '')
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
              h('a', { href: apiUrl(a.url), download: String(a.name ?? ''), class: 'mlops-artifact' }, String(a.name ?? a.sha256)),
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
      h('h3', { class: 'mlops-run-title' }, String(info.name || id.slice(0, 8))),
      keyValueTable(facts, 'mlops-info', false),
      section('Parameters', true, keyValueTable(run.params, 'mlops-params')),
      section('Metrics', true, keyValueTable(run.metrics, 'mlops-metrics'), ...charts),
      section('Stage timeline', true, stageTimeline(run.cells)),
      section('Lineage', true, lineageGraph(run.graph)),
      section('Artifacts', true, artifacts),
      section('Models', false, rowsTable(run.models, ['name', 'class_name', 'stage'])),
      section('Datasets', false, rowsTable(run.datasets, ['name', 'version', 'n_rows', 'n_cols', 'fingerprint'])),
      section('Notes', run.notes.length > 0, rowsTable(run.notes, ['cell_seq', 'kind', 'message'])),
      section('Environment', false, rowsTable(run.environment, ['kind', 'name', 'version']))
    );
    return [view, running];
  }

  private async generateDocs(notebook: string, runId: string | undefined, message: HTMLElement): Promise<void> {
    message.classList.remove('mlops-error');
    message.textContent = 'Generating docs…';
    try {
      const answer = await request<{ url: string }>('docs', { notebook, run_id: runId });
      message.replaceChildren(
        'Docs written: ',
        docsLink(answer.url, 'open')
      );
    } catch (error) {
      message.classList.add('mlops-error');
      message.textContent = (error as Error).message;
    }
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
          h('td', { class: values[id] === best && numbers.length > 1 ? 'mlops-best' : '' }, formatValue(values[id]))
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
      h('button', { class: 'mlops-back', onclick: () => void this.display({ kind: 'runs' }) }, '‹ Runs'),
      h('h3', {}, `Comparing ${ids.length} runs`),
      section(
        'Parameters (differences highlighted)',
        true,
        h('table', { class: 'mlops-rows mlops-compare-params' }, h('thead', {}, head), h('tbody', {}, ...paramRows))
      ),
      section(
        'Metrics',
        true,
        h('table', { class: 'mlops-rows mlops-compare-metrics' }, h('thead', {}, head.cloneNode(true)), h('tbody', {}, ...metricRows)),
        ...overlays
      )
    );
  }

  // ------------------------------------------------------------------ forms
  /** The notebook field shared by the pipeline and schedule forms, and its parameters. */
  private async notebookForm(
    title: string,
    build: (notebook: string, fields: ParameterFields) => HTMLElement[]
  ): Promise<HTMLElement> {
    const notebookInput = h('input', {
      class: 'mlops-notebook',
      type: 'text',
      placeholder: 'path/to/notebook.ipynb (relative to the Jupyter root)'
    });
    notebookInput.value = this.options.currentNotebook() ?? '';
    const holder = h('div', { class: 'mlops-form-body' });
    const load = async () => {
      const notebook = notebookInput.value.trim();
      if (!notebook) {
        holder.replaceChildren(h('p', { class: 'mlops-empty' }, 'Open a notebook or type its path, then press Enter.'));
        return;
      }
      holder.replaceChildren(h('p', { class: 'mlops-loading' }, 'Reading parameters…'));
      try {
        const parameters = await request<Parameter[]>(`pipeline/parameters${query({ notebook })}`);
        const fields = new ParameterFields(parameters);
        holder.replaceChildren(fields.node, ...build(notebook, fields));
      } catch (error) {
        holder.replaceChildren(h('p', { class: 'mlops-error' }, (error as Error).message));
      }
    };
    notebookInput.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        void load();
      }
    });
    await load();
    return h(
      'div',
      { class: 'mlops-form' },
      h('h3', {}, title),
      h('label', {}, 'Notebook', notebookInput),
      holder
    );
  }

  private async pipelineView(): Promise<HTMLElement> {
    return this.notebookForm('Run pipeline', (notebook, fields) => {
      const experiment = h('input', { class: 'mlops-experiment-name', type: 'text', placeholder: 'default: the notebook name' });
      const message = h('div', { class: 'mlops-form-message', role: 'status' });
      const docsMessage = h('div', { class: 'mlops-docs-message' });
      const run = h('button', { class: 'mlops-run-pipeline jp-mod-accept' }, 'Run');
      run.addEventListener('click', async () => {
        message.classList.remove('mlops-error');
        try {
          const body = { notebook, parameters: fields.read(), experiment: experiment.value.trim() || undefined };
          run.disabled = true;
          const answer = await request<{ pid: number }>('pipeline/runs', body);
          message.textContent = `Started (process ${answer.pid}); the run appears in Runs.`;
          this.pipelinesActive = true;
          this.filterText = '';
          this.page = 1;
          this.sort = 'start_time';
          this.order = 'desc';
          window.setTimeout(() => void this.display({ kind: 'runs' }), 500);
        } catch (error) {
          message.classList.add('mlops-error');
          message.textContent = (error as Error).message;
        } finally {
          run.disabled = false;
        }
      });
      const docs = h(
        'button',
        { class: 'mlops-generate-docs', onclick: () => void this.generateDocs(notebook, undefined, docsMessage) },
        'Generate docs for the latest run'
      );
      return [h('label', {}, 'Experiment', experiment), h('div', { class: 'mlops-row' }, run, docs), message, docsMessage];
    });
  }

  private async scheduleView(): Promise<HTMLElement> {
    return this.notebookForm('Schedule', (notebook, fields) => {
      const cron = h('input', { class: 'mlops-cron', type: 'text', value: '0 6 * * *', title: 'minute hour day-of-month month day-of-week' });
      const target = h('select', { class: 'mlops-target' }, ...TARGETS.map(t => h('option', { value: t }, t)));
      const out = h('input', { class: 'mlops-out', type: 'text', placeholder: 'default: schedules/<target>' });
      const message = h('div', { class: 'mlops-form-message', role: 'status' });
      const write = h('button', { class: 'mlops-write-schedule jp-mod-accept' }, 'Write schedule');
      write.addEventListener('click', async () => {
        message.classList.remove('mlops-error');
        message.textContent = 'Writing…';
        try {
          const answer = await request<ScheduleResult>('schedule', {
            notebook,
            cron: cron.value,
            target: target.value,
            out: out.value.trim() || `schedules/${target.value}`,
            parameters: fields.read()
          });
          message.replaceChildren(
            h('p', {}, 'Wrote:'),
            h('ul', {}, ...answer.files.map(f => h('li', {}, f))),
            h('p', {}, 'Next runs:'),
            h('ul', {}, ...answer.next_runs.map(t => h('li', {}, t))),
            h('p', {}, 'To install: '),
            h('code', {}, answer.install),
            ...(answer.note ? [h('p', {}, `Note: ${answer.note}`)] : [])
          );
        } catch (error) {
          message.classList.add('mlops-error');
          message.textContent = (error as Error).message;
        }
      });
      return [
        h('label', {}, 'Cron', cron),
        h('label', {}, 'Target', target),
        h('label', {}, 'Folder', out),
        write,
        message
      ];
    });
  }
}

/** A link that opens generated docs (an API path) in a new browser tab. */
function docsLink(path: string, label: string): HTMLElement {
  return h('a', { class: 'mlops-docs-link', href: apiUrl(path), target: '_blank', rel: 'noopener' }, label);
}

function statusBadge(run: RunSummary): HTMLElement {
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
