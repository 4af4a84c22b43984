/**
 * Notebook integration: mark a cell with a stage (the `mlops:STAGE` tag that pipelines and
 * `%mlops track` read) and show a stage badge on tagged and `%%mlops track` cells.
 */
import { ICellModel } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';

export const STAGES = ['ingest', 'clean', 'explore', 'features', 'train', 'evaluate'];
export const TAG_PREFIX = 'mlops:';
const STAGE_NAME = /^[A-Za-z0-9_-]+$/;

/** The stage a cell declares: its `mlops:` tag, else the stage of a `%%mlops track` line. */
export function stageOf(model: ICellModel): string | null {
  const tags = model.getMetadata('tags');
  if (Array.isArray(tags)) {
    const tag = tags.find(t => typeof t === 'string' && t.startsWith(TAG_PREFIX));
    if (tag) {
      return tag.slice(TAG_PREFIX.length);
    }
  }
  if (model.type !== 'code') {
    return null;
  }
  const first = model.sharedModel.getSource().split('\n', 1)[0].trim();
  const words = first.split(/\s+/);
  if (words[0] !== '%%mlops' || words[1] !== 'track') {
    return null;
  }
  for (let i = 2; i < words.length; i++) {
    if (words[i].startsWith('--')) {
      i += words[i].includes('=') ? 0 : 1; // skip the option's value
    } else if (words[i]) {
      return words[i];
    }
  }
  return null;
}

/** Why a stage name is refused, or null when it is fine. */
export function checkStage(stage: string): string | null {
  return STAGE_NAME.test(stage)
    ? null
    : `"${stage}" is not a stage name: use letters, digits, _ and - only`;
}

/** Set (or with `null`, remove) the cell's `mlops:` tag, keeping its other tags. */
export function setStage(model: ICellModel, stage: string | null): void {
  const tags = model.getMetadata('tags');
  const kept = (Array.isArray(tags) ? tags : []).filter(
    t => !(typeof t === 'string' && t.startsWith(TAG_PREFIX))
  );
  if (stage) {
    kept.push(`${TAG_PREFIX}${stage}`);
  }
  if (kept.length) {
    model.setMetadata('tags', kept);
  } else {
    model.deleteMetadata('tags');
  }
}

/** Keeps one badge per staged cell of a notebook up to date. */
export function trackBadges(panel: NotebookPanel): void {
  let pending: number | null = null;
  const refresh = () => {
    pending = null;
    if (panel.isDisposed) {
      return;
    }
    for (const cell of panel.content.widgets) {
      const host = cell.inputArea?.node ?? cell.node;
      const stage = stageOf(cell.model);
      let badge: HTMLElement | null = null;
      // one badge, in the input area once the cell has one (it can be created after the cell)
      cell.node.querySelectorAll<HTMLElement>('.mlops-stage-badge').forEach(found => {
        if (stage && found.parentElement === host && !badge) {
          badge = found;
        } else {
          found.remove();
        }
      });
      if (!stage) {
        continue;
      }
      if (!badge) {
        badge = document.createElement('span');
        badge.className = 'mlops-stage-badge';
        host.appendChild(badge);
      }
      badge.textContent = stage;
      badge.title = `MLOps stage: ${stage}`;
      badge.dataset.stage = stage;
    }
  };
  const schedule = () => {
    if (pending === null) {
      pending = window.setTimeout(refresh, 150);
    }
  };
  const watchCells = () => {
    const model = panel.content.model;
    if (!model) {
      return;
    }
    for (let i = 0; i < model.cells.length; i++) {
      model.cells.get(i).metadataChanged.connect(schedule);
    }
  };
  panel.context.ready.then(() => {
    watchCells();
    panel.content.model?.cells.changed.connect(() => {
      watchCells();
      schedule();
    });
    schedule();
  });
  panel.content.modelContentChanged.connect(schedule);
  panel.content.activeCellChanged.connect(schedule);
  panel.content.cellInViewportChanged.connect(schedule); // lazily rendered cells get badges too
}
