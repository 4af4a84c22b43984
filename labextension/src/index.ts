/**
 * mlops-nb for JupyterLab: the "MLOps" navigator in the left area, runs tabs in the main
 * area (runs table, run detail, compare), model tabs (versions, aliases, alias moves), and
 * the notebook stage commands and badges.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import {
  ICommandPalette,
  InputDialog,
  MainAreaWidget,
  showErrorMessage,
  WidgetTracker
} from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { LabIcon, refreshIcon, ToolbarButton } from '@jupyterlab/ui-components';
import { Menu } from '@lumino/widgets';

import { ModelView } from './models';
import { Activity, RunsView } from './runs';
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
  openRuns: 'mlops-nb:open-runs',
  openRun: 'mlops-nb:open-run',
  compareRuns: 'mlops-nb:compare-runs',
  openModel: 'mlops-nb:open-model',
  runPipeline: 'mlops-nb:run-pipeline',
  markStage: 'mlops-nb:mark-stage',
  clearStage: 'mlops-nb:clear-stage'
};

const CELL_SELECTOR = '.jp-Notebook .jp-Cell';

type RunsTab = MainAreaWidget<RunsView>;
type ModelTab = MainAreaWidget<ModelView>;

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'mlops-nb:plugin',
  description: 'The MLOps navigator, runs tabs and notebook stage badges for the mlops_nb experiment log.',
  autoStart: true,
  optional: [INotebookTracker, ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const activity = new Activity();
    const tracker = new WidgetTracker<RunsTab>({ namespace: 'mlops-nb-runs' });
    let tabs = 0;

    /** The runs tab of an experiment ('' = all), made and added to the main area if needed. */
    const runsTab = (experiment: string, activate = true): RunsTab => {
      let tab = tracker.find(widget => widget.content.experiment === experiment);
      if (!tab) {
        const content = new RunsView({ experiment, activity });
        tab = new MainAreaWidget({ content });
        dress(
          tab,
          'mlops-runs-tab',
          `MLOps runs · ${experiment || 'all'}`,
          experiment ? `Runs of the experiment ${experiment}` : 'Runs of all experiments',
          () => void content.refresh()
        );
        void tracker.add(tab);
        app.shell.add(tab, 'main');
      }
      if (activate) {
        app.shell.activateById(tab.id);
      }
      return tab;
    };

    /** Id, class, title, icon and a refresh button: what every MLOps main-area tab has. */
    const dress = (
      tab: MainAreaWidget,
      className: string,
      label: string,
      caption: string,
      refresh: () => void
    ): void => {
      tab.id = `mlops-nb-tab-${++tabs}`;
      tab.addClass(className);
      tab.title.label = label;
      tab.title.caption = caption;
      tab.title.icon = mlopsIcon;
      tab.title.closable = true;
      tab.toolbar.addItem(
        'refresh',
        new ToolbarButton({ icon: refreshIcon, tooltip: 'Refresh', onClick: refresh })
      );
    };

    const modelTracker = new WidgetTracker<ModelTab>({ namespace: 'mlops-nb-models' });

    /** The tab of a registered model, made and added to the main area if needed. */
    const modelTab = (name: string, activate = true): ModelTab => {
      let tab = modelTracker.find(widget => widget.content.name === name);
      if (!tab) {
        const content = new ModelView({
          name,
          openRun: (runId, experiment) =>
            void app.commands.execute(COMMANDS.openRun, { runId, experiment }),
          changed: () => void panel.refresh()
        });
        tab = new MainAreaWidget({ content });
        dress(
          tab,
          'mlops-model-tab',
          `MLOps model · ${name}`,
          `Versions and aliases of the registered model ${name}`,
          () => void content.refresh()
        );
        void modelTracker.add(tab);
        app.shell.add(tab, 'main');
      }
      if (activate) {
        app.shell.activateById(tab.id);
      }
      return tab;
    };

    const currentNotebook = () => notebooks?.currentWidget?.context.path ?? null;
    const panel = new MlopsPanel({
      currentNotebook,
      activity,
      openRuns: (experiment, newest) =>
        void app.commands.execute(COMMANDS.openRuns, { experiment, newest: !!newest }),
      openRun: (runId, experiment) =>
        void app.commands.execute(COMMANDS.openRun, { runId, experiment }),
      openModel: name => void app.commands.execute(COMMANDS.openModel, { name })
    });
    panel.id = 'mlops-nb-sidebar';
    panel.title.icon = mlopsIcon;
    panel.title.caption = 'MLOps: experiments, runs, models, pipelines';
    app.shell.add(panel, 'left', { rank: 650 });
    tracker.currentChanged.connect((_, tab) => panel.setCurrent(tab ? tab.content.experiment : null));

    app.commands.addCommand(COMMANDS.open, {
      label: 'Show MLOps Panel',
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(COMMANDS.openRuns, {
      label: args =>
        args.experiment ? `Open MLOps Runs of ${String(args.experiment)}` : 'Open MLOps Runs',
      caption: 'The runs table of an experiment (all experiments by default) in the main area',
      icon: args => (args.isPalette ? undefined : mlopsIcon),
      execute: args => {
        const tab = runsTab(String(args.experiment ?? ''), args.activate !== false);
        if (args.newest) {
          tab.content.showNewest();
        }
        return tab;
      }
    });
    app.commands.addCommand(COMMANDS.openRun, {
      label: 'Open MLOps Run…',
      caption: "A run's detail (params, metrics, timeline, lineage) in the main area",
      execute: async args => {
        let runId = args.runId ? String(args.runId) : '';
        if (!runId) {
          const answer = await InputDialog.getText({
            title: 'Open MLOps run',
            label: 'Run id, a unique prefix of one, or "latest"',
            placeholder: 'latest'
          });
          if (!answer.button.accept) {
            return;
          }
          runId = answer.value?.trim() || 'latest';
        }
        const tab = runsTab(String(args.experiment ?? ''));
        tab.content.showRun(runId);
        return tab;
      }
    });
    app.commands.addCommand(COMMANDS.compareRuns, {
      label: 'Compare MLOps Runs',
      isVisible: args => Array.isArray(args.runIds),
      execute: args => {
        const tab = runsTab(String(args.experiment ?? ''));
        tab.content.showCompare((args.runIds as string[]).map(String));
        return tab;
      }
    });
    app.commands.addCommand(COMMANDS.openModel, {
      label: args => (args.name ? `Open MLOps Model ${String(args.name)}` : 'Open MLOps Model'),
      caption: "A registered model's versions, aliases and alias history in the main area",
      isVisible: args => typeof args.name === 'string',
      execute: args => modelTab(String(args.name), args.activate !== false)
    });
    app.commands.addCommand(COMMANDS.runPipeline, {
      label: 'Run Notebook as MLOps Pipeline…',
      execute: () => {
        app.shell.activateById(panel.id);
        panel.showPipeline();
      }
    });
    if (restorer) {
      void restorer.restore(tracker, {
        command: COMMANDS.openRuns,
        args: tab => ({ experiment: tab.content.experiment, activate: false }),
        name: tab => tab.content.experiment || '*'
      });
      void restorer.restore(modelTracker, {
        command: COMMANDS.openModel,
        args: tab => ({ name: tab.content.name, activate: false }),
        name: tab => tab.content.name
      });
    }
    if (notebooks) {
      addStageCommands(app, notebooks);
      notebooks.widgetAdded.connect((_, notebookPanel) => trackBadges(notebookPanel));
      notebooks.forEach(notebookPanel => trackBadges(notebookPanel));
    }
    if (palette) {
      const category = 'MLOps';
      palette.addItem({ command: COMMANDS.open, category });
      palette.addItem({ command: COMMANDS.openRuns, category });
      palette.addItem({ command: COMMANDS.openRun, category });
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
