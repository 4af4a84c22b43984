/**
 * mlops-nb for JupyterLab: the "MLOps" sidebar and the notebook stage commands and badges.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, InputDialog, showErrorMessage } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';
import { Menu } from '@lumino/widgets';

import { MlopsPanel } from './sidebar';
import { checkStage, setStage, STAGES, stageOf, trackBadges } from './stages';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
  '<g class="jp-icon3" fill="#616161"><rect x="3" y="13" width="4" height="8" rx="1"/>' +
  '<rect x="10" y="8" width="4" height="13" rx="1"/><rect x="17" y="3" width="4" height="18" rx="1"/>' +
  '</g></svg>';

const mlopsIcon = new LabIcon({ name: 'mlops-nb:icon', svgstr: ICON_SVG });

const COMMANDS = {
  open: 'mlops-nb:open',
  runPipeline: 'mlops-nb:run-pipeline',
  markStage: 'mlops-nb:mark-stage',
  clearStage: 'mlops-nb:clear-stage'
};

const CELL_SELECTOR = '.jp-Notebook .jp-Cell';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'mlops-nb:plugin',
  description: 'The MLOps sidebar and notebook stage badges for the mlops_nb experiment log.',
  autoStart: true,
  optional: [INotebookTracker, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker | null,
    palette: ICommandPalette | null
  ) => {
    const currentNotebook = () => notebooks?.currentWidget?.context.path ?? null;
    const panel = new MlopsPanel({ currentNotebook });
    panel.id = 'mlops-nb-sidebar';
    panel.title.icon = mlopsIcon;
    panel.title.caption = 'MLOps: runs, lineage, pipelines';
    app.shell.add(panel, 'left', { rank: 650 });

    app.commands.addCommand(COMMANDS.open, {
      label: 'Show MLOps Runs',
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(COMMANDS.runPipeline, {
      label: 'Run Notebook as MLOps Pipeline…',
      execute: () => {
        app.shell.activateById(panel.id);
        panel.showPipeline();
      }
    });
    if (notebooks) {
      addStageCommands(app, notebooks);
      notebooks.widgetAdded.connect((_, notebookPanel) => trackBadges(notebookPanel));
      notebooks.forEach(notebookPanel => trackBadges(notebookPanel));
    }
    if (palette) {
      const category = 'MLOps';
      palette.addItem({ command: COMMANDS.open, category });
      palette.addItem({ command: COMMANDS.runPipeline, category });
      palette.addItem({ command: COMMANDS.markStage, category });
      palette.addItem({ command: COMMANDS.clearStage, category });
    }
  }
};

function addStageCommands(app: JupyterFrontEnd, notebooks: INotebookTracker): void {
  const activeCell = () => notebooks.activeCell;
  app.commands.addCommand(COMMANDS.markStage, {
    label: args => (args.stage ? String(args.stage) : 'Mark Cell with MLOps Stage…'),
    caption: 'Tag the active cell mlops:STAGE so pipelines and %mlops track record it as that stage',
    isEnabled: () => activeCell() !== null,
    isToggled: args => !!args.stage && !!activeCell() && stageOf(activeCell()!.model) === args.stage,
    execute: async args => {
      const cell = activeCell();
      if (!cell) {
        return;
      }
      let stage = args.stage ? String(args.stage) : null;
      if (!stage) {
        const answer = await InputDialog.getItem({
          title: 'Mark cell with stage',
          items: STAGES,
          current: stageOf(cell.model) ?? STAGES[0],
          editable: true
        });
        if (!answer.button.accept || !answer.value) {
          return;
        }
        stage = answer.value.trim();
      }
      const problem = checkStage(stage);
      if (problem) {
        await showErrorMessage('Cannot mark the cell', problem);
        return;
      }
      setStage(cell.model, stage);
    }
  });
  app.commands.addCommand(COMMANDS.clearStage, {
    label: 'Clear MLOps Stage',
    isEnabled: () => !!activeCell() && stageOf(activeCell()!.model) !== null,
    execute: () => {
      const cell = activeCell();
      if (cell) {
        setStage(cell.model, null);
      }
    }
  });
  const menu = new Menu({ commands: app.commands });
  menu.title.label = 'MLOps Stage';
  menu.addClass('mlops-stage-menu');
  for (const stage of STAGES) {
    menu.addItem({ command: COMMANDS.markStage, args: { stage } });
  }
  menu.addItem({ type: 'separator' });
  menu.addItem({ command: COMMANDS.markStage });
  menu.addItem({ command: COMMANDS.clearStage });
  app.contextMenu.addItem({ type: 'submenu', submenu: menu, selector: CELL_SELECTOR, rank: 30 });
}

export default plugin;
