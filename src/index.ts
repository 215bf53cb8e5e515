/**
 * nbfrost's JupyterLab / Notebook 7 extension: the Jobs panel in the left
 * sidebar, a status-bar count of running jobs, and palette commands.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { DocumentWidget } from '@jupyterlab/docregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { NbfrostAPI, IProcess } from './api';
import { setText } from './dom';
import { cancelJobsOf, countRunning, JobsPanel } from './panel';

export namespace CommandIDs {
  export const showPanel = 'nbfrost:show-jobs';
  export const cancelNotebookJobs = 'nbfrost:cancel-notebook-jobs';
}

/** The panel's id in the shell (also its DOM id). */
export const PANEL_ID = 'nbfrost-jobs-panel';

/** How often the status bar asks for the running count while the panel is hidden (ms). */
const STATUS_REFRESH_MS = 3000;

const jobsIcon = new LabIcon({
  name: 'nbfrost:jobs',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<path d="M4 5h16v2H4zM4 11h10v2H4zM4 17h13v2H4z"/>' +
    '<circle cx="19" cy="12" r="2.5"/>' +
    '</g></svg>'
});

/** The status-bar item: "nbfrost: N running". */
class RunningItem extends Widget {
  constructor(onClick: () => void) {
    super();
    this.addClass('nbfrost-statusbar');
    this.node.title = 'Running nbfrost jobs across kernels: click to show the Jobs panel';
    this.node.addEventListener('click', onClick);
    this.setRunning(0);
  }

  setRunning(running: number): void {
    setText(this.node, `nbfrost: ${running} running`);
    this.node.dataset.running = String(running);
  }
}

/** The path of the document in the main area, if it is one. */
function currentPath(app: JupyterFrontEnd): string | null {
  const widget = app.shell.currentWidget;
  return widget instanceof DocumentWidget ? widget.context.path : null;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbfrost:jobs-panel',
  description: "Every kernel's nbfrost jobs in one sidebar panel.",
  autoStart: true,
  optional: [ICommandPalette, IStatusBar],
  activate: (app: JupyterFrontEnd, palette: ICommandPalette | null, statusBar: IStatusBar | null) => {
    const api = new NbfrostAPI(app.serviceManager.serverSettings);
    let item: RunningItem | null = null;
    const panel = new JobsPanel({
      api,
      openPath: path => void app.commands.execute('docmanager:open', { path }),
      onRunning: running => item?.setRunning(running)
    });
    panel.id = PANEL_ID;
    panel.title.icon = jobsIcon;
    panel.title.caption = 'nbfrost Jobs';
    panel.title.label = app.name === 'Jupyter Notebook' ? 'Jobs' : '';
    app.shell.add(panel, 'left', { rank: 950 });

    app.commands.addCommand(CommandIDs.showPanel, {
      label: 'Show the nbfrost Jobs Panel',
      caption: "Every kernel's nbfrost jobs",
      icon: jobsIcon,
      execute: () => app.shell.activateById(PANEL_ID)
    });
    app.commands.addCommand(CommandIDs.cancelNotebookJobs, {
      label: args => (args.path ? `Cancel nbfrost Jobs of ${args.path}` : "Cancel This Notebook's nbfrost Jobs"),
      caption: 'Cancel every queued or running nbfrost job of a notebook',
      isEnabled: args => Boolean(args.path ?? currentPath(app)),
      execute: async args => {
        const path = (args.path as string | undefined) ?? currentPath(app);
        if (!path) {
          return 0;
        }
        const { processes } = await api.processes();
        const mine = processes.filter((p: IProcess) => p.path === path && p.alive);
        const cancelled = await cancelJobsOf(api, mine);
        void panel.refresh();
        return cancelled;
      }
    });
    if (palette) {
      const category = 'nbfrost';
      palette.addItem({ command: CommandIDs.showPanel, category });
      palette.addItem({ command: CommandIDs.cancelNotebookJobs, category });
    }

    if (statusBar) {
      item = new RunningItem(() => void app.commands.execute(CommandIDs.showPanel));
      statusBar.registerStatusItem('nbfrost:running', {
        item,
        align: 'left',
        rank: 900
      });
      // While the panel is visible it reports the count; otherwise ask now and then.
      const poll = async () => {
        if (panel.isVisible || document.hidden) {
          return;
        }
        try {
          const { processes } = await api.processes();
          item?.setRunning(countRunning(processes));
        } catch {
          // No server extension: the panel says so when it is opened.
        }
      };
      void app.restored.then(() => {
        void poll();
        window.setInterval(() => void poll(), STATUS_REFRESH_MS);
      });
    }
  }
};

export default plugin;
