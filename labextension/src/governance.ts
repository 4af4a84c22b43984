/**
 * Governance in the main-area tabs: a run's data checks, the personal data found in its
 * datasets and its fairness per sensitive column (runs.ts), and a registered version's
 * permutation importance chart and fairness (models.ts). Built with dom.ts only: column
 * names, groups and values from the log go in as text, never as markup.
 */
import { DataCheck, Fairness, Governance, Importance, PersonalData } from './api';
import { formatTime, formatValue, h, s } from './dom';

/** What a failure shows instead of the values of a personal-data column. */
export const PERSONAL_HIDDEN = 'personal data: not shown';

const SUMMARY: [string, string][] = [
  ['demographic_parity_difference', 'demographic parity difference'],
  ['demographic_parity_ratio', 'demographic parity ratio'],
  ['equalized_odds_difference', 'equalized odds difference']
];

const METRIC_LABELS: Record<string, string> = {
  accuracy: 'accuracy',
  selection_rate: 'selection rate',
  tpr: 'true positive rate',
  fpr: 'false positive rate',
  count: 'rows'
};

/** The Governance part of a run's detail: data checks, personal data, fairness. */
export function governanceView(governance: Governance | undefined): HTMLElement {
  const { checks = [], personal_data = [], fairness = [] } = governance ?? {};
  if (!checks.length && !personal_data.length && !fairness.length) {
    return h(
      'p',
      { class: 'mlops-empty mlops-no-governance' },
      'No data check, personal data or fairness recorded in this run.'
    );
  }
  return h(
    'div',
    { class: 'mlops-governance' },
    h('h3', { class: 'mlops-governance-title' }, 'Data checks'),
    checks.length
      ? h('div', { class: 'mlops-checks' }, ...checks.map(checkView))
      : h('p', { class: 'mlops-empty' }, 'No data check ran (%%mlops track STAGE --expect REF).'),
    h('h3', { class: 'mlops-governance-title' }, 'Personal data'),
    personal_data.length
      ? personalDataTable(personal_data)
      : h('p', { class: 'mlops-empty' }, 'No column was found to hold personal data.'),
    h('h3', { class: 'mlops-governance-title' }, 'Fairness'),
    fairness.length
      ? fairnessView(fairness)
      : h('p', { class: 'mlops-empty' }, 'Not measured (%%mlops track evaluate --sensitive COLUMN).')
  );
}

/** "failed clean@v1 against customers.yaml: 3 of 23 checks failed on 240 rows", then each failure. */
function checkView(check: DataCheck): HTMLElement {
  const verdict = check.passed
    ? `${check.n_checks} checks passed`
    : `${check.n_failed} of ${check.n_checks} checks failed`;
  const head = ['column', 'check', 'failing rows', 'example rows', 'example values'];
  return h(
    'div',
    { class: 'mlops-check', 'data-check-id': check.check_id, 'data-passed': String(check.passed) },
    h(
      'p',
      { class: 'mlops-check-summary', title: formatTime(check.created_at) },
      h(
        'span',
        { class: `mlops-badge ${check.passed ? 'mlops-badge-finished' : 'mlops-badge-failed'}` },
        check.passed ? 'passed' : 'failed'
      ),
      ` ${check.target} against ${check.expectation}: ${verdict} on ${formatValue(check.n_rows)} rows`
    ),
    check.failures.length
      ? h(
          'table',
          { class: 'mlops-rows mlops-check-failures' },
          h('thead', {}, h('tr', {}, ...head.map(c => h('th', {}, c)))),
          h(
            'tbody',
            {},
            ...check.failures.map(f => {
              const more = f.n_failing > f.example_rows.length && f.example_rows.length ? ', …' : '';
              return h(
                'tr',
                { 'data-column': f.column, 'data-check': f.check },
                h('td', {}, f.column),
                h('td', {}, f.check),
                h('td', { class: 'mlops-number' }, `${formatValue(f.n_failing)} of ${formatValue(f.n_rows)}`),
                h('td', {}, f.example_rows.join(', ') + more),
                f.example_values === null
                  ? h('td', { class: 'mlops-personal' }, PERSONAL_HIDDEN)
                  : h('td', {}, f.example_values.map(v => formatValue(v)).join(', '))
              );
            })
          )
        )
      : null
  );
}

function personalDataTable(rows: PersonalData[]): HTMLElement {
  const head = ['dataset', 'column', 'kind', 'found by', 'share', 'status'];
  return h(
    'table',
    { class: 'mlops-rows mlops-pii' },
    h('thead', {}, h('tr', {}, ...head.map(c => h('th', {}, c)))),
    h(
      'tbody',
      {},
      ...rows.map(row =>
        h(
          'tr',
          { 'data-column': row.column, 'data-status': row.status },
          h('td', {}, row.dataset),
          h('td', {}, row.column),
          h('td', {}, row.kind),
          h('td', {}, row.method),
          h('td', { class: 'mlops-number' }, row.share === null ? '' : `${Math.round(row.share * 100)}%`),
          h('td', { class: `mlops-pii-${row.status}` }, row.status)
        )
      )
    )
  );
}

/** `selection_rate[yes]` as "selection rate (yes)". */
function metricLabel(metric: string): string {
  const [base, klass] = metric.split('[');
  const label = METRIC_LABELS[base] ?? base.replace(/_/g, ' ');
  return klass ? `${label} (${klass.replace(/\]$/, '')})` : label;
}

/** Per sensitive column: the three summary numbers first, then a row per group and overall. */
export function fairnessView(cards: Fairness[]): HTMLElement {
  return h(
    'div',
    { class: 'mlops-fairness-list' },
    ...cards.map(card =>
      h(
        'div',
        { class: 'mlops-fairness', 'data-sensitive': card.sensitive },
        h('p', { class: 'mlops-fairness-title' }, `By ${card.sensitive} (${formatValue(card.n_rows)} rows)`),
        h(
          'table',
          { class: 'mlops-rows mlops-fairness-summary' },
          h('thead', {}, h('tr', {}, ...SUMMARY.map(([, label]) => h('th', {}, label)))),
          h(
            'tbody',
            {},
            h(
              'tr',
              {},
              ...SUMMARY.map(([key]) =>
                h('td', { class: 'mlops-number', 'data-metric': key }, formatValue(card.summary[key]))
              )
            )
          )
        ),
        h(
          'table',
          { class: 'mlops-rows mlops-fairness-groups' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', {}, card.sensitive),
              ...card.metrics.map(m => h('th', { class: 'mlops-number' }, metricLabel(m)))
            )
          ),
          h(
            'tbody',
            {},
            ...card.groups.map(group =>
              h(
                'tr',
                { 'data-group': group.group },
                h('td', {}, group.group),
                ...card.metrics.map(m => h('td', { class: 'mlops-number' }, formatValue(group[m])))
              )
            ),
            h(
              'tr',
              { class: 'mlops-overall' },
              h('td', {}, 'overall'),
              ...card.metrics.map(m => h('td', { class: 'mlops-number' }, formatValue(card.overall[m])))
            )
          )
        )
      )
    )
  );
}

/**
 * Permutation importance as horizontal bars from a zero line, most important first, each
 * with a whisker of ± its std over the repeats (negative bars: shuffling helped, noise).
 */
export function importanceChart(importance: Importance): HTMLElement {
  const rows = importance.rows;
  const width = 420;
  const left = 120;
  const right = 56;
  const top = 6;
  const rowHeight = 20;
  const height = top + rowHeight * rows.length + 20;
  const low = Math.min(0, ...rows.map(r => r.importance - r.std));
  let high = Math.max(0, ...rows.map(r => r.importance + r.std));
  if (high === low) {
    high = low + 1;
  }
  const x = (value: number) => left + ((value - low) / (high - low)) * (width - left - right);
  const zero = x(0);
  const svg = s(
    'svg',
    { class: 'mlops-importance-chart', viewBox: `0 0 ${width} ${height}`, role: 'img' },
    s('title', {}, `Permutation importance (drop of ${importance.metric ?? 'the score'})`),
    s('line', { x1: zero, y1: top, x2: zero, y2: height - 18, class: 'mlops-axis' }),
    s('text', { x: zero, y: height - 4, 'text-anchor': 'middle' }, '0'),
    s('text', { x: x(high), y: height - 4, 'text-anchor': 'end' }, formatValue(high))
  );
  rows.forEach((row, index) => {
    const y = top + index * rowHeight;
    const end = x(row.importance);
    const [x0, x1] = [Math.min(zero, end), Math.max(zero, end)];
    const label = row.feature.length > 18 ? `${row.feature.slice(0, 17)}…` : row.feature;
    const bar = s(
      'g',
      { class: `mlops-importance-bar${row.importance < 0 ? ' mlops-negative' : ''}`, 'data-feature': row.feature },
      s('title', {}, `${row.feature}: ${formatValue(row.importance)} ± ${formatValue(row.std)}`),
      s('text', { x: left - 6, y: y + 14, 'text-anchor': 'end' }, label),
      s('rect', { x: x0.toFixed(1), y: y + 4, width: Math.max(x1 - x0, 0.5).toFixed(1), height: rowHeight - 8 }),
      s('text', { x: width - right + 6, y: y + 14, class: 'mlops-importance-value' }, formatValue(row.importance))
    );
    if (row.std > 0) {
      const [w0, w1, mid] = [x(row.importance - row.std), x(row.importance + row.std), y + rowHeight / 2];
      bar.appendChild(s('line', { x1: w0.toFixed(1), y1: mid, x2: w1.toFixed(1), y2: mid, class: 'mlops-whisker' }));
    }
    svg.appendChild(bar);
  });
  const caption =
    `Permutation importance: the drop of ${importance.metric ?? 'the score'} when a column is ` +
    `shuffled (${importance.n_repeats} repeats on ${formatValue(importance.n_rows)} rows; ± std)`;
  return h('figure', { class: 'mlops-figure mlops-importance' }, h('figcaption', {}, caption), svg);
}
