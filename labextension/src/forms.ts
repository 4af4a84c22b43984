/**
 * Typed input fields for a notebook's parameters (the Run pipeline and Schedule forms),
 * and the runs filter box's little language.
 */
import { Condition, Parameter, Scalar } from './api';
import { h } from './dom';

/** One field per parameter; `read()` returns only the values changed from the defaults. */
export class ParameterFields {
  readonly node: HTMLElement;
  private readers: (() => [string, unknown] | null)[] = [];

  constructor(parameters: Parameter[]) {
    this.node = h('div', { class: 'mlops-fields' });
    if (!parameters.length) {
      this.node.appendChild(
        h('p', { class: 'mlops-empty' }, 'This notebook has no parameters cell.')
      );
    }
    for (const parameter of parameters) {
      this.add(parameter);
    }
  }

  /** The changed values, typed; throws an Error naming the field when one is unreadable. */
  read(): Record<string, unknown> {
    const values: Record<string, unknown> = {};
    for (const reader of this.readers) {
      const pair = reader();
      if (pair) {
        values[pair[0]] = pair[1];
      }
    }
    return values;
  }

  private add(parameter: Parameter): void {
    const id = `mlops-param-${parameter.name}`;
    const type = parameter.type;
    let input: HTMLInputElement | HTMLSelectElement;
    let value: () => unknown; // the typed value sent to the server
    let state: () => string; // what the user sees, to tell whether it changed
    if (parameter.choices && parameter.choices.length) {
      const choices = parameter.choices;
      const select = h('select', { id, name: parameter.name });
      choices.forEach((choice, index) => {
        const option = h('option', { value: index }, String(choice));
        option.selected = choice === parameter.default;
        select.appendChild(option);
      });
      input = select;
      value = () => choices[Number(select.value)];
      state = () => select.value;
    } else if (type === 'bool') {
      const box = h('input', { id, name: parameter.name, type: 'checkbox' });
      box.checked = parameter.default === true;
      input = box;
      value = () => box.checked;
      state = () => String(box.checked);
    } else {
      const numeric = type === 'int' || type === 'float';
      const field = h('input', {
        id,
        name: parameter.name,
        type: numeric ? 'number' : 'text',
        step: type === 'float' ? 'any' : numeric ? 1 : undefined,
        'data-type': type
      });
      field.value = textOf(parameter.default);
      input = field;
      value = () => parseField(parameter, field.value);
      state = () => field.value;
    }
    const initial = state();
    this.readers.push(() => (state() === initial ? null : [parameter.name, value()]));
    this.node.appendChild(
      h(
        'div',
        { class: 'mlops-field' },
        h('label', { for: id }, parameter.name, h('span', { class: 'mlops-type' }, ` ${parameter.annotation || type}`)),
        input,
        parameter.help ? h('small', {}, parameter.help) : null
      )
    );
  }
}

function textOf(value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** A text field's value as the parameter's type; the server checks it again. */
function parseField(parameter: Parameter, text: string): unknown {
  const type = parameter.type;
  if (type === 'str') {
    return text;
  }
  if (type === 'int' || type === 'float') {
    const number = Number(text);
    if (text.trim() === '' || !Number.isFinite(number)) {
      throw new Error(`${parameter.name}: "${text}" is not ${type}`);
    }
    return number;
  }
  if (text.trim() === '') {
    return null;
  }
  try {
    return JSON.parse(text);
  } catch {
    return text; // e.g. a plain string for `str | None`; the server decides
  }
}

const CONDITION = /^([A-Za-z0-9_.-]+)(<=|>=|!=|=|<|>|~)(.*)$/;
const OPS: Record<string, string> = { '~': 'contains' };

/**
 * The filter box: space-separated terms, all of which must hold. `field<op>value` with op
 * one of = != < <= > >= ~ (contains), e.g. `status=failed params.lr<0.1 metrics.acc>=0.9`;
 * a bare word matches run names containing it.
 */
export function parseFilter(text: string): Condition[] {
  const conditions: Condition[] = [];
  for (const term of text.trim().split(/\s+/).filter(Boolean)) {
    const match = CONDITION.exec(term);
    if (!match) {
      conditions.push({ field: 'name', op: 'contains', value: term });
      continue;
    }
    const [, field, op, raw] = match;
    if (raw === '') {
      throw new Error(`"${term}" has no value after ${op}`);
    }
    conditions.push({ field, op: OPS[op] ?? op, value: scalar(raw) });
  }
  return conditions;
}

function scalar(raw: string): Scalar {
  if (raw === 'null') {
    return null;
  }
  if (raw === 'true' || raw === 'false') {
    return raw === 'true';
  }
  const number = Number(raw);
  return raw.trim() !== '' && Number.isFinite(number) ? number : raw;
}
