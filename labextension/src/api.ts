/**
 * The REST API of the mlops_nb server extension (see mlops_nb/server/openapi.yaml).
 * Every call goes through ServerConnection so the token and _xsrf cookie are sent.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export type Scalar = string | number | boolean | null;

export interface Health {
  ok: boolean;
  version: string;
  log: string;
  log_exists: boolean;
}

export interface Experiment {
  experiment: string;
  runs: number;
  last_run: string | null;
}

export interface RunSummary {
  run_id: string;
  experiment: string;
  name: string;
  status: string;
  start_time: string;
  duration_s: number | null;
  params: Record<string, Scalar>;
  metrics: Record<string, number>;
  stage: string | null;
  progress: string | null;
}

/** A running run as GET progress reports it (progress: cells done/total, e.g. "3/10"). */
export type RunningRun = Pick<
  RunSummary,
  'run_id' | 'experiment' | 'name' | 'status' | 'start_time' | 'stage' | 'progress'
>;

export interface RunsPage {
  total: number;
  page: number;
  page_size: number;
  runs: RunSummary[];
}

export interface Condition {
  field: string;
  op: string;
  value: Scalar;
}

export interface Point {
  step: number;
  value: number;
}

export type Row = Record<string, Scalar>;

export interface RunDetail {
  info: Row;
  params: Record<string, Scalar>;
  metrics: Record<string, number>;
  metric_history: Record<string, Point[]>;
  tags: Record<string, string>;
  cells: Row[];
  datasets: Row[];
  lineage: Row[];
  artifacts: (Row & { url: string })[];
  models: Row[];
  environment: Row[];
  notes: Row[];
  docs: string | null;
  notebook: string | null;
  governance?: Governance;
}

/** One failed check of a column (example values null: personal data, never shown). */
export interface CheckFailure {
  column: string;
  check: string;
  n_failing: number;
  n_rows: number;
  example_rows: number[];
  example_values: Scalar[] | null;
}

/** One data check of a frame against expectations (--expect, mlops-nb validate). */
export interface DataCheck {
  check_id: string;
  cell_seq: number | null;
  target: string;
  expectation: string;
  n_rows: number;
  n_checks: number;
  n_failed: number;
  passed: boolean;
  created_at: string;
  failures: CheckFailure[];
}

/** A column found to hold personal data (the latest finding per dataset version). */
export interface PersonalData {
  dataset: string;
  column: string;
  kind: string;
  method: string;
  share: number | null;
  status: string;
}

/** One sensitive column's fairness: summary numbers, then a row per group. */
export interface Fairness {
  sensitive: string;
  summary: Record<string, number | null>;
  /** accuracy, selection_rate, tpr, fpr, count (multiclass: selection_rate[c], ...) */
  metrics: string[];
  groups: ({ group: string } & Record<string, number | string | null>)[];
  overall: Record<string, number | null>;
  n_rows: number;
}

/** A run's Governance part (GET runs/{id} → governance). */
export interface Governance {
  checks: DataCheck[];
  personal_data: PersonalData[];
  fairness: Fairness[];
}

/** Permutation importance of a version, most important first (numbers; drawn here). */
export interface Importance {
  rows: { feature: string; importance: number; std: number }[];
  metric: string | null;
  n_rows: number;
  n_repeats: number;
}

export interface Comparison {
  runs: Row[];
  params: { name: string; values: Record<string, Scalar>; differs: boolean }[];
  metrics: Record<string, Record<string, number | null>>;
  metric_history: Record<string, Record<string, Point[]>>;
}

export interface Parameter {
  name: string;
  type: string;
  annotation: string;
  default: unknown;
  help: string;
  choices: Scalar[] | null;
}

export interface ScheduleResult {
  files: string[];
  next_runs: string[];
  install: string;
  note: string | null;
}

/** A pipeline run this server started (GET pipeline/runs), as of its last check. */
export interface PipelineProcess {
  pid: number;
  notebook: string;
  state: 'running' | 'finished' | 'failed';
  returncode: number | null;
  /** The last line of the process's error output when it failed. */
  error: string | null;
  /** The process's output file, beside the log. */
  log: string;
  started: string;
  ended: string | null;
}

/** A registered model as GET models lists it. */
export interface ModelSummary {
  name: string;
  versions: number;
  latest_version: number;
  /** alias -> the version it points at now */
  aliases: Record<string, number>;
  created_at: string;
  last_registered_at: string;
}

/** One registered version (GET models/{name}). */
export interface ModelVersion {
  version: number;
  aliases: string[];
  run_id: string | null;
  experiment: string | null;
  model_var: string | null;
  steps: string[];
  format: string;
  artifact_sha256: string;
  metrics: Record<string, number>;
  user: string;
  description: string | null;
  created_at: string;
  verified: boolean;
  verification: Record<string, Scalar>;
  signature: { n_columns: number; columns: { name: string; kind: string }[] };
  outputs: Record<string, unknown>;
  /** What the version relies on (importance) and how fair its evaluation was. */
  explanations?: { importance: Importance; fairness: Fairness[] } | null;
}

/** One alias move, as kept in the alias history (to_version null: removed). */
export interface AliasMove {
  alias: string;
  from_version: number | null;
  to_version: number | null;
  user: string;
  reason: string | null;
  moved_at: string;
}

export interface ModelDetail {
  name: string;
  aliases: Record<string, number>;
  /** Newest first. */
  versions: ModelVersion[];
  /** Newest first. */
  alias_history: AliasMove[];
}

/** The answer of POST models/{name}/aliases. */
export interface AliasMoved {
  name: string;
  alias: string;
  version: number;
  previous: number | null;
}

/** An answer of the API that was not a success; `message` is the server's one line. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

const settings = ServerConnection.makeSettings();

/** The absolute URL of an API path, e.g. for download links and the generated docs. */
export function apiUrl(path: string): string {
  return URLExt.join(settings.baseUrl, 'mlops-nb', 'api', path);
}

/** GET (or POST with a JSON body) an API path and return its JSON answer. */
export async function request<T>(path: string, body?: unknown): Promise<T> {
  const init: RequestInit =
    body === undefined
      ? { method: 'GET' }
      : { method: 'POST', body: JSON.stringify(body) };
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(apiUrl(path), init, settings);
  } catch (error) {
    throw new ApiError(0, `the Jupyter server does not answer: ${error}`);
  }
  const text = await response.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message =
      data && typeof data.message === 'string'
        ? data.message
        : `HTTP ${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return data as T;
}

/** A query string from the values that are set. */
export function query(values: Record<string, string | number | undefined>): string {
  const parts = Object.entries(values)
    .filter(([, value]) => value !== undefined && value !== '')
    .map(
      ([key, value]) =>
        `${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`
    );
  return parts.length ? `?${parts.join('&')}` : '';
}
