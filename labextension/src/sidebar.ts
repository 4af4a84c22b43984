/**
 * The "MLOps" left panel, the navigator: the experiments (run counts, last run), the
 * registered models (where their aliases point), the runs going on now, and the Run pipeline
 * and Schedule forms. Runs tables, run details and
 * comparisons open in the main area (runs.ts), through the callbacks the plugin passes in.
 */
import { Widget } from '@lumino/widgets';

import {
  ApiError,
  Experiment,
  Health,
  ModelSummary,
  Parameter,
  PipelineProcess,
  query,
  request,
  RunningRun,
  ScheduleResult
} from './api';
import { formatTime, h } from './dom';
import { ParameterFields } from './forms';
import { Activity, generateDocs, statusBadge } from './runs';

const POLL_MS = 1000;
/** How often the panel looks for runs started elsewhere while nothing is known to run. */
const IDLE_POLL_MS = 5000;
const TARGETS = ['cron', 'systemd', 'airflow', 'kubernetes', 'gitlab', 'github', 'jenkins', 'docker'];

type View = 'experiments' | 'pipeline' | 'schedule';

export interface PanelOptions {
  /** The path of the notebook the user is looking at, relative to the server root. */
  currentNotebook: () => string | null;
  /** Open (or activate) the main-area runs tab of an experiment; '' for all of them. */
  openRuns: (experiment: string, newest?: boolean) => void;
  /** Open a run's detail in the main area, in its experiment's runs tab. */
  openRun: (runId: string, experiment: string) => void;
  /** Open (or activate) the main-area tab of a registered model. */
  openModel: (name: string) => void;
  activity: Activity;
}

export class MlopsPanel extends Widget {
  private view: View = 'experiments';
  private pollTimer: number | null = null;
  private reportedFailures = new Set<number>();
  private runningIds = '';
  private renderToken = 0;
  private current: string | null = null;
  private readonly status: HTMLElement;
  private readonly toolbar: HTMLElement;
  private readonly running: HTMLElement;
  private readonly body: HTMLElement;
  /** Milliseconds from the panel's start to the experiments on screen. */
  readyMs: number | null = null;

  constructor(private readonly options: PanelOptions) {
    super();
    this.addClass('mlops-panel');
    this.status = h('div', { class: 'mlops-status', role: 'status' }, 'Connecting…');
    const nav = (view: View, klass: string, label: string) =>
      h('button', { class: `mlops-nav ${klass}`, 'data-view': view, onclick: () => void this.display(view) }, label);
    this.toolbar = h(
      'div',
      { class: 'mlops-toolbar' },
      nav('experiments', 'mlops-nav-experiments', 'Experiments'),
      nav('pipeline', 'mlops-nav-pipeline', 'Run pipeline'),
      nav('schedule', 'mlops-nav-schedule', 'Schedule')
    );
    const refresh = h('button', { class: 'mlops-refresh', title: 'Refresh', onclick: () => void this.refresh() }, '⟳');
    this.running = h('div', { class: 'mlops-running' });
    this.running.hidden = true;
    this.body = h('div', { class: 'mlops-body' });
    this.node.append(
      h('header', {}, h('div', { class: 'mlops-title-row' }, h('h2', {}, 'MLOps'), refresh), this.status),
      this.toolbar,
      this.running,
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
      this.body.replaceChildren(h('button', { class: 'mlops-retry', onclick: () => void this.start() }, 'Try again'));
      return;
    }
    this.setStatus(health.log_exists ? `Log: ${health.log}` : `No experiment log yet (it will be ${health.log}).`);
    this.status.title = health.log;
    this.toolbar.hidden = false;
    await this.display(this.view);
    await this.poll();
    if (this.readyMs === null) {
      this.readyMs = performance.now() - started;
      this.node.dataset.readyMs = this.readyMs.toFixed(0);
    }
  }

  dispose(): void {
    this.stopPolling();
    super.dispose();
  }

  /** Reload the experiments, the runs going on and the current view (the ⟳ button). */
  async refresh(): Promise<void> {
    await this.display(this.view, true);
    await this.poll();
  }

  /** Show the Run pipeline form for a notebook (used by the notebook toolbar command). */
  showPipeline(): void {
    void this.display('pipeline');
  }

  /** Mark the experiment whose runs tab is in front ('' for all; null: none). */
  setCurrent(experiment: string | null): void {
    this.current = experiment;
    for (const item of this.body.querySelectorAll<HTMLElement>('.mlops-open-experiment')) {
      item.classList.toggle('mlops-current', item.dataset.experiment === experiment);
    }
  }

  private setStatus(text: string, error = false): void {
    this.status.textContent = text;
    this.status.classList.toggle('mlops-error', error);
  }

  /** Render a view; `quiet` keeps the current content until the new one is ready. */
  async display(view: View, quiet = false): Promise<void> {
    this.view = view;
    const token = ++this.renderToken;
    if (!quiet) {
      this.body.replaceChildren(h('p', { class: 'mlops-loading' }, 'Loading…'));
    }
    this.node.dataset.view = view;
    for (const button of this.toolbar.querySelectorAll<HTMLElement>('.mlops-nav')) {
      button.classList.toggle('mlops-current', button.dataset.view === view);
    }
    let content: HTMLElement;
    try {
      if (view === 'experiments') {
        content = await this.experimentsView();
      } else if (view === 'pipeline') {
        content = await this.pipelineView();
      } else {
        content = await this.scheduleView();
      }
    } catch (error) {
      content = h('p', { class: 'mlops-error' }, (error as Error).message);
    }
    if (token === this.renderToken && !this.isDisposed) {
      this.body.replaceChildren(content);
    }
  }

  // ------------------------------------------------------------------ experiments
  private async experimentsView(): Promise<HTMLElement> {
    const [experiments, models] = await Promise.all([
      request<Experiment[]>('experiments'),
      request<ModelSummary[]>('models').catch((error: Error) => error)
    ]);
    const total = experiments.reduce((sum, e) => sum + e.runs, 0);
    const last = experiments.map(e => e.last_run ?? '').sort().pop() || null;
    const item = (experiment: string, label: string, runs: number, lastRun: string | null) =>
      h(
        'li',
        {},
        h(
          'button',
          {
            class: 'mlops-open-experiment' + (experiment === this.current ? ' mlops-current' : ''),
            'data-experiment': experiment,
            title: `Open the runs of ${label} in the main area`,
            onclick: () => this.options.openRuns(experiment)
          },
          h('span', { class: 'mlops-experiment-name' }, label),
          h(
            'span',
            { class: 'mlops-experiment-meta' },
            `${runs.toLocaleString('en-US')} run${runs === 1 ? '' : 's'}`,
            lastRun ? ` · last ${formatTime(lastRun, true)}` : ''
          )
        )
      );
    if (!experiments.length) {
      return h(
        'div',
        { class: 'mlops-experiments' },
        h(
          'p',
          { class: 'mlops-empty' },
          'No runs yet. Track a notebook (%load_ext mlops_nb, then %mlops track) or use Run pipeline.'
        ),
        this.modelsSection(models)
      );
    }
    return h(
      'div',
      { class: 'mlops-experiments' },
      h('h3', {}, 'Experiments'),
      h(
        'ul',
        { class: 'mlops-experiment-list' },
        item('', 'All experiments', total, last),
        ...experiments.map(e => item(e.experiment, e.experiment, e.runs, e.last_run))
      ),
      this.modelsSection(models)
    );
  }

  /** The registered models, each with where its aliases point: "churn · champion → v3". */
  private modelsSection(models: ModelSummary[] | Error): HTMLElement {
    let content: HTMLElement;
    if (models instanceof Error) {
      content = h('p', { class: 'mlops-error' }, models.message);
    } else if (!models.length) {
      content = h('p', { class: 'mlops-empty' }, 'No models registered yet (%mlops register NAME).');
    } else {
      content = h(
        'ul',
        { class: 'mlops-experiment-list mlops-model-list' },
        ...models.map(model => {
          const aliases = Object.entries(model.aliases).map(([alias, v]) => `${alias} → v${v}`);
          const versions = `${model.versions} version${model.versions === 1 ? '' : 's'}`;
          return h(
            'li',
            {},
            h(
              'button',
              {
                class: 'mlops-open-model',
                'data-model': model.name,
                title: `${[model.name, ...aliases].join('\n')}\nOpen the versions of ${model.name} in the main area`,
                onclick: () => this.options.openModel(model.name)
              },
              h(
                'span',
                { class: 'mlops-experiment-name' },
                model.name,
                aliases.length ? h('span', { class: 'mlops-model-alias-list' }, ` · ${aliases.join(', ')}`) : null
              ),
              h(
                'span',
                { class: 'mlops-experiment-meta' },
                `${versions} · latest v${model.latest_version} · ${formatTime(model.last_registered_at, true)}`
              )
            )
          );
        })
      );
    }
    return h('div', { class: 'mlops-models' }, h('h3', {}, 'Models'), content);
  }

  // ------------------------------------------------------------------ runs going on
  private schedulePoll(delay: number): void {
    this.stopPolling();
    if (!this.isDisposed) {
      this.pollTimer = window.setTimeout(() => void this.poll(), delay);
    }
  }

  private stopPolling(): void {
    if (this.pollTimer !== null) {
      window.clearTimeout(this.pollTimer);
      this.pollTimer = null;
    }
  }

  /** The running runs and pipeline processes; quick while something runs, slow otherwise. */
  private async poll(): Promise<void> {
    this.stopPolling();
    const activity = this.options.activity;
    let running: RunningRun[] = [];
    try {
      if (activity.pipelinesActive) {
        const processes = await request<PipelineProcess[]>('pipeline/runs');
        this.reportFailures(processes);
        activity.pipelinesActive = processes.some(p => p.state === 'running');
      }
      running = await request<RunningRun[]>('progress');
    } catch {
      activity.pipelinesActive = false;
    }
    if (this.isDisposed) {
      return;
    }
    this.showRunning(running);
    const ids = running.map(run => run.run_id).join(',');
    if (ids !== this.runningIds) {
      this.runningIds = ids;
      if (this.view === 'experiments') {
        void this.display('experiments', true); // counts and last runs changed
      }
    }
    const busy = running.length > 0 || activity.pipelinesActive;
    this.schedulePoll(busy ? POLL_MS : IDLE_POLL_MS);
  }

  private showRunning(running: RunningRun[]): void {
    this.running.hidden = running.length === 0;
    this.running.replaceChildren(
      h('h3', {}, 'Running now'),
      h(
        'ul',
        {},
        ...running.map(run =>
          h(
            'li',
            {},
            h(
              'button',
              {
                class: 'mlops-running-run',
                'data-run-id': run.run_id,
                title: `${run.experiment} · ${run.name}\nOpen this run in the main area`,
                onclick: () => this.options.openRun(run.run_id, run.experiment)
              },
              h('span', { class: 'mlops-experiment-name' }, run.name || run.run_id.slice(0, 8)),
              h('span', { class: 'mlops-experiment-meta' }, run.experiment, run.stage ? ` · ${run.stage}` : ''),
              statusBadge(run)
            )
          )
        )
      )
    );
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
          message.textContent = `Started (process ${answer.pid}); the run appears in the runs tab.`;
          this.options.activity.pipelinesActive = true;
          this.options.openRuns(body.experiment ?? '', true);
          this.schedulePoll(0);
        } catch (error) {
          message.classList.add('mlops-error');
          message.textContent = (error as Error).message;
        } finally {
          run.disabled = false;
        }
      });
      const docs = h(
        'button',
        {
          class: 'mlops-generate-docs',
          title: "Generate the docs of this notebook's latest run",
          onclick: () => void generateDocs(notebook, undefined, docsMessage)
        },
        'Generate docs'
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
