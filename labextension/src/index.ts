/**
 * jupyter-berth's JupyterLab extension: the Berth sidebar (left area) and the current
 * kernel's limits in the status bar.
 */

import { ILabShell, ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import berthSvg from '../style/icons/berth.svg';
import { BerthActions, IKernelWidget, isKernelWidget } from './actions';
import { BerthAPI } from './api';
import { DEFAULT_BOUND_SETTINGS, GiB, IBoundSettings, MiB } from './format';
import { BerthModel } from './model';
import { BerthSidebar } from './sidebar';
import { KernelLimitsStatus } from './statusbar';

export const PLUGIN_ID = 'jupyter-berth:plugin';

export const berthIcon = new LabIcon({ name: 'jupyter-berth:berth', svgstr: berthSvg });

export namespace CommandIDs {
  export const open = 'berth:open-sidebar';
  export const refresh = 'berth:refresh';
}

/** The sidebar's settings, read from schema/plugin.json's fields. */
export function boundSettingsFrom(composite: Record<string, unknown>): IBoundSettings {
  const num = (key: string, fallback: number) => {
    const v = composite[key];
    return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : fallback;
  };
  return {
    cpuStep: num('cpuStep', DEFAULT_BOUND_SETTINGS.cpuStep),
    memoryStep: num('memoryStepMiB', DEFAULT_BOUND_SETTINGS.memoryStep / MiB) * MiB,
    unlimitedCpu: num('unlimitedCpu', DEFAULT_BOUND_SETTINGS.unlimitedCpu),
    unlimitedMemory: num('unlimitedMemoryGiB', DEFAULT_BOUND_SETTINGS.unlimitedMemory / GiB) * GiB,
    diskStep: num('diskStepGiB', DEFAULT_BOUND_SETTINGS.diskStep / GiB) * GiB,
    unlimitedDisk: num('unlimitedDiskGiB', DEFAULT_BOUND_SETTINGS.unlimitedDisk / GiB) * GiB
  };
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Choose the image version, CPU, memory, GPU share and folders of each kernel; see your kernels and quota.',
  autoStart: true,
  requires: [IDocumentManager],
  optional: [ILabShell, ISettingRegistry, IStatusBar, ICommandPalette, IDefaultFileBrowser, ILayoutRestorer, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    docManager: IDocumentManager,
    labShell: ILabShell | null,
    settingRegistry: ISettingRegistry | null,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null,
    fileBrowser: IDefaultFileBrowser | null,
    restorer: ILayoutRestorer | null,
    translator: ITranslator | null
  ) => {
    const trans = (translator ?? nullTranslator).load('jupyter-berth');
    const model = new BerthModel(new BerthAPI(app.serviceManager.serverSettings));
    const actions = new BerthActions({
      app,
      docManager,
      model,
      currentDirectory: () => fileBrowser?.model.path ?? '',
      trans
    });
    const sessionPath = (kernelId: string): string | null => {
      for (const s of app.serviceManager.sessions.running()) {
        if (s.kernel?.id === kernelId) {
          return s.path;
        }
      }
      return null;
    };
    const sidebar = new BerthSidebar({ model, actions, sessionPath, trans });
    sidebar.title.icon = berthIcon;
    app.shell.add(sidebar, 'left', { rank: 650, type: 'Berth' });
    restorer?.add(sidebar, 'jupyter-berth-sidebar');
    app.serviceManager.sessions.runningChanged.connect(() => sidebar.update());

    let status: KernelLimitsStatus | null = null;
    if (statusBar) {
      status = new KernelLimitsStatus(model, trans);
      statusBar.registerStatusItem('jupyter-berth:kernel-limits', {
        item: status,
        align: 'left',
        rank: 5,
        isActive: () => !!status?.isActive,
        activeStateChanged: status.activeStateChanged
      });
    }

    // Follow the main area's notebook or console (and its kernel changes).
    let followed: IKernelWidget | null = null;
    const onKernelChanged = () => sidebar.update();
    const follow = (widget: Widget | null) => {
      followed?.sessionContext.kernelChanged.disconnect(onKernelChanged);
      followed = isKernelWidget(widget) ? widget : null;
      followed?.sessionContext.kernelChanged.connect(onKernelChanged);
      sidebar.current = followed;
      if (status) {
        status.current = followed;
      }
    };
    if (labShell) {
      labShell.currentChanged.connect((_, args) => follow(args.newValue));
    }
    void app.restored.then(() => follow(app.shell.currentWidget));

    app.commands.addCommand(CommandIDs.open, {
      label: trans.__('Show the Berth sidebar'),
      caption: trans.__('Choose image, CPU, memory, GPU share and folders for a kernel'),
      icon: berthIcon,
      execute: () => app.shell.activateById(sidebar.id)
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: trans.__('Berth: reload images, policy and kernels'),
      execute: () => model.loadAll()
    });
    palette?.addItem({ command: CommandIDs.open, category: trans.__('Berth') });
    palette?.addItem({ command: CommandIDs.refresh, category: trans.__('Berth') });

    let pollSeconds = 5;
    const applySettings = (settings: ISettingRegistry.ISettings | null) => {
      const composite = (settings?.composite ?? {}) as Record<string, unknown>;
      sidebar.boundSettings = boundSettingsFrom(composite);
      const interval = composite.refreshInterval;
      pollSeconds = typeof interval === 'number' && interval >= 0 ? interval : 5;
      model.startPolling(pollSeconds);
      if (status) {
        status.enabled = composite.showStatusBar !== false;
      }
    };
    void model.loadAll();
    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          applySettings(settings);
          settings.changed.connect(applySettings);
        })
        .catch(reason => {
          console.warn('jupyter-berth: settings not loaded, using defaults', reason);
          applySettings(null);
        });
    } else {
      applySettings(null);
    }
  }
};

export default plugin;
