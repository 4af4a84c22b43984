/**
 * A registered model in a main-area tab: its versions (aliases as badges, source run,
 * key metrics, verified), the history of its aliases, and "Move alias…" on each version,
 * which asks for the alias and a reason, then for a confirmation, then POSTs the move.
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { AliasMove, AliasMoved, ModelDetail, ModelVersion, request } from './api';
import { formatTime, formatValue, h, section } from './dom';

/** How many metrics the versions table shows (those most versions have). */
const KEY_METRICS = 4;

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
      const model = await request<ModelDetail>(`models/${encodeURIComponent(this.name)}`);
      content = this.modelView(model);
    } catch (error) {
      content = h('p', { class: 'mlops-error' }, (error as Error).message);
    }
    if (token === this.renderToken && !this.isDisposed) {
      this.body.replaceChildren(content);
    }
  }

  private modelView(model: ModelDetail): HTMLElement {
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
