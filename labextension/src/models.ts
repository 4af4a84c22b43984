/**
 * A registered model in a main-area tab: its versions (aliases as badges, source run,
 * key metrics, verified), what monitors it (the newest drift check, live and estimated
 * performance against the training-time baseline, what `mlops-nb monitor` did and why), the
 * history of its aliases, and "Move alias…" on each version, which asks for the alias and a
 * reason, then for a confirmation, then POSTs the move.
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { AliasMove, AliasMoved, ModelDetail, ModelVersion, request } from './api';
import { formatTime, formatValue, h, section } from './dom';
import { fairnessView, importanceChart } from './governance';

/** How many metrics the versions table shows (those most versions have). */
const KEY_METRICS = 4;

/** One column of a drift check (GET models/{name} → monitoring.drift). */
interface DriftColumn {
  column: string;
  column_type: string | null;
  method: string;
  score: number | null;
  threshold: number | null;
  drifted: boolean;
  exact: boolean;
}

/** The newest drift check of the model: the verdict, the inputs and the predictions. */
interface DriftCheck {
  check_id: string;
  when: string;
  model_version: number | null;
  reference: string;
  current: string;
  share: number | null;
  dataset_drift: boolean | null;
  drift_share: number | null;
  summary: string;
  n_reference: number;
  n_current: number;
  columns: DriftColumn[];
  predictions: DriftColumn[];
}

/** The newest window of one metric: measured from labels (realized) or estimated. */
interface LivePerformance {
  kind: string;
  metric: string;
  value: number | null;
  baseline: number | null;
  model_version: number | null;
  window_start: string;
  window_end: string;
  n_rows: number;
  measured_at: string;
}

/** One step of `mlops-nb monitor` (drift, performance, retrain, register, gate, promote). */
interface MonitorEvent {
  when: string;
  step: string;
  outcome: string;
  reason: string | null;
  alias: string | null;
  run_id: string | null;
  check_id: string | null;
  from_version: number | null;
  to_version: number | null;
}

interface Monitoring {
  drift: DriftCheck | null;
  performance: LivePerformance[];
  /** Newest first. */
  events: MonitorEvent[];
}

/** GET models/{name}, with what monitors the model. */
type MonitoredModel = ModelDetail & { monitoring?: Monitoring };

export interface ModelViewOptions {
  name: string;
  /** Open a run's detail in the main area (the source run of a version). */
  openRun: (runId: string, experiment: string) => void;
  /** An alias moved: the panel's Models section shows where aliases point. */
  changed: () => void;
}

/** What the first dialog asks: which alias, and why. */
interface MoveRequest {
  alias: string;
  reason: string;
}

/** The body of the "Move alias" dialog: the alias (existing ones offered) and a reason. */
class MoveAliasBody extends Widget implements Dialog.IBodyWidget<MoveRequest> {
  private readonly alias: HTMLInputElement;
  private readonly reason: HTMLInputElement;

  constructor(aliases: string[], suggested: string, version: number) {
    super();
    this.addClass('mlops-move-alias-form');
    const listId = `mlops-aliases-${Math.random().toString(36).slice(2)}`;
    this.alias = h('input', { class: 'mlops-alias-name', type: 'text', list: listId, value: suggested });
    this.reason = h('input', {
      class: 'mlops-alias-reason',
      type: 'text',
      placeholder: 'why (kept in the alias history)'
    });
    this.node.append(
      h('p', {}, `Point an alias at version ${version}.`),
      h('label', {}, 'Alias', this.alias),
      h('datalist', { id: listId }, ...aliases.map(a => h('option', { value: a }))),
      h('label', {}, 'Reason', this.reason)
    );
  }

  getValue(): MoveRequest {
    return { alias: this.alias.value.trim(), reason: this.reason.value.trim() };
  }
}

/** The content of a "MLOps model · <name>" main-area tab. */
export class ModelView extends Widget {
  readonly name: string;
  private renderToken = 0;
  private readonly body: HTMLElement;

  constructor(private readonly options: ModelViewOptions) {
    super();
    this.name = options.name;
    this.addClass('mlops-model-area');
    this.node.dataset.model = this.name;
    this.body = h('div', { class: 'mlops-area-body' });
    this.node.append(this.body);
    void this.refresh(false);
  }

  /** Reload the model; `quiet` keeps what is on screen until the answer is there. */
  async refresh(quiet = true): Promise<void> {
    const token = ++this.renderToken;
    if (!quiet) {
      this.body.replaceChildren(h('p', { class: 'mlops-loading' }, 'Loading…'));
    }
    let content: HTMLElement;
    try {
      const model = await request<MonitoredModel>(`models/${encodeURIComponent(this.name)}`);
      content = this.modelView(model);
    } catch (error) {
      content = h('p', { class: 'mlops-error' }, (error as Error).message);
    }
    if (token === this.renderToken && !this.isDisposed) {
      this.body.replaceChildren(content);
    }
  }

  private modelView(model: MonitoredModel): HTMLElement {
    const aliases = Object.entries(model.aliases);
    return h(
      'div',
      { class: 'mlops-model' },
      h('h2', { class: 'mlops-area-title' }, `Model ${model.name}`),
      h(
        'p',
        { class: 'mlops-model-aliases' },
        aliases.length
          ? aliases.map(([alias, version]) => `${model.name}@${alias} → v${version}`).join(' · ')
          : 'No aliases yet: "Move alias…" on a version points one at it.'
      ),
      h('div', { class: 'mlops-table-wrap' }, this.versionsTable(model)),
      section('Explanations and fairness', true, explanationsView(model)),
      section('Monitoring', true, monitoringView(model.name, model.monitoring)),
      section('Alias history', true, historyTable(model.alias_history))
    );
  }

  private versionsTable(model: ModelDetail): HTMLElement {
    const metrics = keyMetrics(model.versions);
    const head = h(
      'tr',
      {},
      ...['version', 'aliases', 'created', 'user', 'source run'].map(c => h('th', {}, c)),
      ...metrics.map(m => h('th', { class: 'mlops-number', 'data-metric': m }, m)),
      h('th', {}, 'inputs'),
      h('th', {}, 'verified'),
      h('th', {}, '')
    );
    const rows = model.versions.map(version => {
      const run = version.run_id
        ? h(
            'button',
            {
              class: 'mlops-source-run mlops-link',
              title: `Open run ${version.run_id}${version.experiment ? ` (${version.experiment})` : ''}`,
              onclick: () => this.options.openRun(version.run_id!, version.experiment ?? '')
            },
            version.run_id.slice(0, 8)
          )
        : '';
      const pipeline = [...version.steps, version.model_var].filter(Boolean).join(' → ');
      const columns = version.signature.columns.map(c => `${c.name} (${c.kind})`).join('\n');
      return h(
        'tr',
        { class: 'mlops-version', 'data-version': version.version },
        h(
          'td',
          { class: 'mlops-version-number', title: [pipeline, version.description].filter(Boolean).join('\n') },
          `v${version.version}`
        ),
        h(
          'td',
          { class: 'mlops-version-aliases' },
          ...version.aliases.map(alias => h('span', { class: 'mlops-badge mlops-alias-badge', 'data-alias': alias }, alias))
        ),
        h('td', { class: 'mlops-time', title: formatTime(version.created_at) }, formatTime(version.created_at, true)),
        h('td', {}, version.user ?? ''),
        h('td', {}, run),
        ...metrics.map(m => h('td', { class: 'mlops-number' }, formatValue(version.metrics[m]))),
        h('td', { class: 'mlops-number', title: columns }, `${version.signature.n_columns} column${version.signature.n_columns === 1 ? '' : 's'}`),
        h(
          'td',
          { class: 'mlops-verified', title: verificationText(version) },
          version.verified ? '✓' : '–'
        ),
        h(
          'td',
          {},
          h(
            'button',
            { class: 'mlops-move-alias', onclick: () => void this.moveAlias(model, version.version) },
            'Move alias…'
          )
        )
      );
    });
    return h('table', { class: 'mlops-runs-table mlops-versions-table' }, h('thead', {}, head), h('tbody', {}, ...rows));
  }

  /** Ask which alias and why, confirm "Point churn@champion at version 3 (now 2)?", move. */
  private async moveAlias(model: ModelDetail, version: number): Promise<void> {
    const existing = Object.keys(model.aliases);
    const suggested = existing.find(a => a === 'champion') ?? existing[0] ?? 'champion';
    const asked = await showDialog({
      title: `Move an alias of ${model.name}`,
      body: new MoveAliasBody(existing, suggested, version),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Continue' })],
      focusNodeSelector: '.mlops-alias-reason'
    });
    if (!asked.button.accept || !asked.value) {
      return;
    }
    const { alias, reason } = asked.value;
    if (!alias) {
      await showErrorMessage('Cannot move the alias', 'Give the alias a name (e.g. champion).');
      return;
    }
    const now = model.aliases[alias];
    if (now === version) {
      await showErrorMessage('Nothing to move', `${model.name}@${alias} already points at version ${version}.`);
      return;
    }
    const where = now === undefined ? 'a new alias' : `now ${now}`;
    const confirmed = await showDialog({
      title: 'Move alias',
      body: new Widget({
        node: h(
          'div',
          { class: 'mlops-move-alias-confirm' },
          h('p', {}, `Point ${model.name}@${alias} at version ${version} (${where})?`),
          reason ? h('p', {}, `Reason: ${reason}`) : null
        )
      }),
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Move' })]
    });
    if (!confirmed.button.accept) {
      return;
    }
    try {
      await request<AliasMoved>(`models/${encodeURIComponent(model.name)}/aliases`, {
        alias,
        version,
        reason: reason || null
      });
    } catch (error) {
      await showErrorMessage('The alias was not moved', (error as Error).message);
      return;
    }
    await this.refresh();
    this.options.changed();
  }
}

/** The metrics most versions have (ties by name), at most KEY_METRICS. */
function keyMetrics(versions: ModelVersion[]): string[] {
  const counts = new Map<string, number>();
  for (const version of versions) {
    for (const key of Object.keys(version.metrics)) {
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return [...counts.keys()]
    .sort((a, b) => counts.get(b)! - counts.get(a)! || a.localeCompare(b))
    .slice(0, KEY_METRICS);
}

function verificationText(version: ModelVersion): string {
  const v = version.verification;
  if (version.verified) {
    const rows = typeof v.rows === 'number' ? ` (${v.rows.toLocaleString('en-US')} rows)` : '';
    return `Reproduces ${v.predictions ?? 'the recorded predictions'} on ${v.input ?? 'the recorded input'}${rows}`;
  }
  return v.reason ? `Not verified: ${v.reason}` : 'Not verified';
}

function historyTable(moves: AliasMove[]): HTMLElement {
  if (!moves.length) {
    return h('p', { class: 'mlops-empty' }, 'No alias moved yet.');
  }
  const version = (v: number | null, none: string) => (v === null ? none : `v${v}`);
  return h(
    'table',
    { class: 'mlops-rows mlops-alias-history' },
    h('thead', {}, h('tr', {}, ...['when', 'alias', 'move', 'user', 'reason'].map(c => h('th', {}, c)))),
    h(
      'tbody',
      {},
      ...moves.map(move =>
        h(
          'tr',
          { 'data-alias': move.alias },
          h('td', { class: 'mlops-time', title: formatTime(move.moved_at) }, formatTime(move.moved_at, true)),
          h('td', {}, move.alias),
          h('td', {}, `${version(move.from_version, 'new')} → ${version(move.to_version, 'removed')}`),
          h('td', {}, move.user ?? ''),
          h('td', { class: 'mlops-alias-reason-cell' }, move.reason ?? '')
        )
      )
    )
  );
}

/**
 * A version's permutation importance chart and its fairness, for the version picked (first
 * the one `champion` points at, else the newest); picking another redraws in place.
 */
function explanationsView(model: ModelDetail): HTMLElement {
  const champion = model.aliases.champion;
  const first = model.versions.find(v => v.version === champion) ?? model.versions[0];
  const content = h('div', { class: 'mlops-explanations-content' });
  const picker = h(
    'select',
    { class: 'mlops-explain-version', title: 'The version whose explanations are shown' },
    ...model.versions.map(v =>
      h('option', { value: v.version }, `v${v.version}${v.aliases.length ? ` (${v.aliases.join(', ')})` : ''}`)
    )
  );
  const show = (version: ModelVersion | undefined) => {
    if (!version) {
      content.replaceChildren(h('p', { class: 'mlops-empty' }, 'No version.'));
      return;
    }
    content.dataset.version = String(version.version);
    const { importance = null, fairness = [] } = version.explanations ?? {};
    const ref = `${model.name}:${version.version}`;
    content.replaceChildren(
      importance && importance.rows.length
        ? importanceChart(importance)
        : h(
            'p',
            { class: 'mlops-empty mlops-no-importance' },
            `No permutation importance recorded for ${ref}: mlops-nb models explain ${ref} measures it.`
          ),
      fairness.length
        ? fairnessView(fairness)
        : h(
            'p',
            { class: 'mlops-empty mlops-no-fairness' },
            `No fairness measured in the run ${ref} came from (%%mlops track evaluate --sensitive COLUMN).`
          )
    );
  };
  picker.value = String(first?.version ?? '');
  picker.addEventListener('change', () =>
    show(model.versions.find(v => String(v.version) === picker.value))
  );
  show(first);
  return h(
    'div',
    { class: 'mlops-explanations' },
    h('label', { class: 'mlops-row' }, 'Version ', picker),
    content
  );
}

/** The Monitoring part: the newest drift check, live performance, the monitor timeline. */
function monitoringView(name: string, monitoring: Monitoring | undefined): HTMLElement {
  const { drift = null, performance = [], events = [] } = monitoring ?? {};
  if (!drift && !performance.length && !events.length) {
    return h(
      'p',
      { class: 'mlops-empty mlops-not-monitored' },
      `Not monitored yet: no drift check, live performance or monitor step recorded. ` +
        `Try mlops-nb monitor ${name}@champion --requests --since 1d.`
    );
  }
  return h(
    'div',
    { class: 'mlops-monitoring' },
    drift ? driftView(drift) : h('p', { class: 'mlops-empty' }, 'No drift check recorded yet.'),
    performance.length ? performanceTable(performance) : null,
    events.length ? eventsList(events) : null
  );
}

/** "Dataset drift: 2 of 10 columns drifted: …" with the share, then the columns table. */
function driftView(drift: DriftCheck): HTMLElement {
  const verdict =
    drift.dataset_drift === null
      ? 'drift check'
      : drift.dataset_drift
        ? 'dataset drift'
        : 'no dataset drift';
  const share =
    drift.share === null
      ? ''
      : ` (share ${drift.share.toFixed(2)}` +
        `${drift.drift_share === null ? '' : `, drift at ${drift.drift_share}`})`;
  const version = drift.model_version === null ? '' : ` · v${drift.model_version}`;
  return h(
    'div',
    { class: 'mlops-drift', 'data-check': drift.check_id },
    h('h3', { class: 'mlops-monitoring-title' }, 'Drift'),
    h(
      'p',
      { class: 'mlops-drift-summary' },
      h(
        'span',
        { class: `mlops-badge ${drift.dataset_drift ? 'mlops-badge-drift' : 'mlops-badge-no-drift'}` },
        verdict
      ),
      ` ${drift.summary}${share}`
    ),
    h(
      'p',
      { class: 'mlops-drift-meta', title: `check ${drift.check_id}` },
      `${formatTime(drift.when, true)}${version} · ${drift.reference} ` +
        `(${formatValue(drift.n_reference)} rows) against ${drift.current} ` +
        `(${formatValue(drift.n_current)} rows)`
    ),
    driftTable(drift.columns, 'mlops-drift-columns'),
    drift.predictions.length ? h('p', { class: 'mlops-drift-predictions-title' }, 'Predictions') : null,
    drift.predictions.length ? driftTable(drift.predictions, 'mlops-drift-predictions') : null
  );
}

function driftTable(columns: DriftColumn[], klass: string): HTMLElement {
  const head = ['column', 'type', 'method', 'score', 'threshold', 'drifted'];
  return h(
    'table',
    { class: `mlops-rows mlops-drift-table ${klass}` },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...head.map(c => h('th', { class: ['score', 'threshold'].includes(c) ? 'mlops-number' : '' }, c))
      )
    ),
    h(
      'tbody',
      {},
      ...columns.map(c =>
        h(
          'tr',
          {
            class: c.drifted ? 'mlops-drifted' : '',
            'data-column': c.column,
            'data-drifted': String(c.drifted)
          },
          h('td', { class: 'mlops-drift-column' }, c.column),
          h('td', {}, c.column_type ?? ''),
          h('td', {}, c.method),
          h(
            'td',
            { class: 'mlops-number', title: c.exact ? '' : 'approximated from the stored reference profile' },
            `${formatValue(c.score)}${c.exact ? '' : ' ≈'}`
          ),
          h('td', { class: 'mlops-number' }, formatValue(c.threshold)),
          h('td', { class: 'mlops-drift-flag' }, c.drifted ? 'drifted' : '–')
        )
      )
    )
  );
}

const KIND_TITLES: Record<string, string> = {
  realized: 'measured on feedback labels',
  estimated: 'estimated from calibrated probabilities, before labels arrive'
};

/** A change as "+0.02" or "−0.2" (empty when unknown). */
function signed(change: number | null): string {
  return change === null ? '' : `${change >= 0 ? '+' : '−'}${formatValue(Math.abs(change))}`;
}

/** Per metric: the newest live (or estimated) value against the value at training time. */
function performanceTable(rows: LivePerformance[]): HTMLElement {
  const head = ['metric', 'kind', 'value', 'baseline', 'change', 'window', 'rows', 'version'];
  return h(
    'div',
    { class: 'mlops-performance' },
    h('h3', { class: 'mlops-monitoring-title' }, 'Live performance'),
    h(
      'table',
      { class: 'mlops-rows mlops-performance-table' },
      h('thead', {}, h('tr', {}, ...head.map(c => h('th', {}, c)))),
      h(
        'tbody',
        {},
        ...rows.map(p => {
          const change = p.value !== null && p.baseline !== null ? p.value - p.baseline : null;
          return h(
            'tr',
            { 'data-metric': p.metric, 'data-kind': p.kind },
            h('td', {}, p.metric),
            h('td', { title: KIND_TITLES[p.kind] ?? '' }, p.kind === 'realized' ? 'live' : p.kind),
            h('td', { class: 'mlops-number' }, formatValue(p.value)),
            h('td', { class: 'mlops-number' }, formatValue(p.baseline)),
            h('td', { class: 'mlops-number' }, signed(change)),
            h('td', { class: 'mlops-time' }, `${formatTime(p.window_start, true)} – ${formatTime(p.window_end, true)}`),
            h('td', { class: 'mlops-number' }, formatValue(p.n_rows)),
            h('td', {}, p.model_version === null ? '' : `v${p.model_version}`)
          );
        })
      )
    )
  );
}

/** What monitor did, newest first: "2026-12-05 14:02 retrain: finished — retrained because …". */
function eventsList(events: MonitorEvent[]): HTMLElement {
  const versions = (e: MonitorEvent) => {
    const known = [e.from_version, e.to_version].filter((v): v is number => v !== null);
    return known.length ? ` (${known.map(v => `v${v}`).join(' → ')})` : '';
  };
  return h(
    'div',
    { class: 'mlops-monitor-events' },
    h('h3', { class: 'mlops-monitoring-title' }, 'What monitor did'),
    h(
      'ul',
      { class: 'mlops-timeline-list' },
      ...events.map(e =>
        h(
          'li',
          {
            class: 'mlops-monitor-event',
            'data-step': e.step,
            'data-outcome': e.outcome,
            title: e.run_id ? `run ${e.run_id}` : ''
          },
          h('span', { class: 'mlops-time' }, formatTime(e.when, true)),
          ' ',
          h('span', { class: 'mlops-event-step' }, `${e.step}: ${e.outcome}`),
          versions(e),
          e.reason ? h('span', { class: 'mlops-event-reason' }, ` — ${e.reason}`) : null
        )
      )
    )
  );
}
