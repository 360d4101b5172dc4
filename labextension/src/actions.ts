/**
 * What the sidebar's buttons do in JupyterLab: start a notebook or a console on a kernel
 * with the chosen resources, or give the current notebook's kernel new resources.
 *
 * A Berth kernel with explicit resources is started through `POST berth/api/kernels`
 * (the only route that carries a resource request); the document is then opened on that
 * kernel id, so JupyterLab's session attaches to it instead of starting another.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, ISessionContext, showDialog } from '@jupyterlab/apputils';
import { PathExt, URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { BerthAPI } from './api';
import { diskLabel } from './disk';
import { choiceResources, describeLimits, IBounds, overQuota } from './format';
import { BerthModel } from './model';
import { BerthRequestError, messageFromResponse } from './request';
import type { IBerthJob, IChoice, IResources, IStartedKernel } from './types';

/** A main-area widget with a kernel session (a notebook or a console). */
export interface IKernelWidget extends Widget {
  sessionContext: ISessionContext;
}

export function isKernelWidget(widget: Widget | null | undefined): widget is IKernelWidget {
  const session = (widget as unknown as { sessionContext?: unknown } | null | undefined)?.sessionContext;
  return !!session && typeof session === 'object';
}

export interface IActionsOptions {
  app: JupyterFrontEnd;
  docManager: IDocumentManager;
  model: BerthModel;
  /** the folder new notebooks go to (the file browser's current folder) */
  currentDirectory: () => string;
  /** the dialogs' strings (JupyterLab's translator, domain `jupyter-berth`); English when absent */
  trans?: TranslationBundle;
}

export class BerthActions {
  constructor(private options: IActionsOptions) {
    this.trans = options.trans ?? nullTranslator.load('jupyter-berth');
  }

  readonly trans: TranslationBundle;

  get api(): BerthAPI {
    return this.options.model.api;
  }

  /** The main-area widget whose kernel "change resources" acts on, if any. */
  currentKernelWidget(): IKernelWidget | null {
    const widget = this.options.app.shell.currentWidget;
    return isKernelWidget(widget) ? widget : null;
  }

  /**
   * Create an untitled notebook in the current folder, start a Berth kernel for it with
   * `choice`, and open it on that kernel. Returns the notebook's path.
   */
  async startNotebook(choice: IChoice): Promise<{ path: string; kernel: IStartedKernel }> {
    const { app, docManager } = this.options;
    const file = await app.serviceManager.contents.newUntitled({ path: this.options.currentDirectory(), type: 'notebook' });
    let kernel: IStartedKernel;
    try {
      kernel = await this.api.startKernel(this.startRequest(choice, file.path));
    } catch (error) {
      // Leave no empty notebook behind when the kernel was refused.
      await app.serviceManager.contents.delete(file.path).catch(() => undefined);
      throw error;
    }
    // A session for the notebook's path on the new kernel: the notebook finds it when it
    // opens and connects to it (opening with a kernel preference instead races with
    // JupyterLab's own start and can shut the kernel down).
    await this.attachSession(file.path, 'notebook', file.name, kernel);
    docManager.open(file.path, 'Notebook');
    void this.options.model.refreshLive();
    return { path: file.path, kernel };
  }

  /** Start a Berth kernel with `choice` and open a console on it. */
  async startConsole(choice: IChoice): Promise<IStartedKernel> {
    const dir = this.options.currentDirectory();
    const kernel = await this.api.startKernel(this.startRequest(choice, dir ? `${dir}/console` : 'console'));
    try {
      const path = PathExt.join(dir, `console-${kernel.id.slice(0, 8)}`);
      await this.attachSession(path, 'console', 'Console', kernel);
      await this.options.app.commands.execute('console:create', {
        basePath: dir,
        path,
        kernelPreference: { id: kernel.id, name: kernel.name }
      });
    } catch (error) {
      await this.api.stopKernel(kernel.id).catch(() => undefined);
      throw error;
    }
    void this.options.model.refreshLive();
    return kernel;
  }

  /**
   * Give the current notebook's (or console's) kernel new resources: after the user
   * confirms that its state will be lost, start a new Berth kernel with `choice` and
   * switch the session to it (the server shuts the old one down).
   *
   * The new kernel is started first, so a refused request leaves the old one running.
   * Only when the user's quota cannot hold both, but can hold the new one once the old
   * one is gone, is the old kernel shut down first.
   *
   * @returns `false` when the user cancelled.
   */
  async changeResources(widget: IKernelWidget, choice: IChoice, bounds: IBounds | null): Promise<boolean> {
    const session = widget.sessionContext;
    const oldId = session.session?.kernel?.id ?? null;
    const old = this.options.model.kernel(oldId);
    const name = widget.title.label || session.path;
    const what = describeLimits(choiceResources(choice), choice.image, diskLabel(choice.disk, this.trans));
    const result = await showDialog({
      title: this.trans.__('Restart with new resources?'),
      body: this.trans.__(
        'The kernel of %1 will restart in a new container with %2. Its state will be lost: variables, imported modules and running work. Outputs already in the notebook stay.',
        name,
        what
      ),
      buttons: [
        Dialog.cancelButton({ label: this.trans.__('Cancel') }),
        Dialog.warnButton({ label: this.trans.__('Restart with new resources') })
      ],
      defaultButton: 0
    });
    if (!result.button.accept) {
      return false;
    }
    const request = this.startRequest(choice, session.path);
    let kernel: IStartedKernel;
    try {
      kernel = await this.api.startKernel(request);
    } catch (error) {
      if (!(old && bounds && this.oldKernelInTheWay(error, choice, bounds, old.resources))) {
        throw error;
      }
      await session.shutdown();
      try {
        kernel = await this.api.startKernel(request);
      } catch (retryError) {
        throw new BerthRequestError(
          `${(retryError as Error).message} (The old kernel was shut down to make room; ` +
            'pick a kernel again from the Kernel menu or start one from this sidebar.)',
          (retryError as BerthRequestError).status ?? 0
        );
      }
    }
    await session.changeKernel({ id: kernel.id, name: kernel.name });
    void this.options.model.refreshLive();
    return true;
  }

  /** Stop one of the user's kernels (after asking). */
  async stopKernel(kernelId: string, label: string): Promise<boolean> {
    const result = await showDialog({
      title: this.trans.__('Stop this kernel?'),
      body: this.trans.__('%1 will be shut down and its container removed. Notebooks using it lose their state.', label),
      buttons: [Dialog.cancelButton({ label: this.trans.__('Cancel') }), Dialog.warnButton({ label: this.trans.__('Stop kernel') })],
      defaultButton: 0
    });
    if (!result.button.accept) {
      return false;
    }
    await this.api.stopKernel(kernelId);
    await this.options.model.refreshLive();
    return true;
  }

  /** Take one of the user's waiting starts out of the start queue (its start then fails, saying so). */
  async cancelQueuedStart(kernelId: string): Promise<void> {
    await this.api.cancelQueuedStart(kernelId);
    await this.options.model.refreshLive();
  }

  /**
   * Cancel one of the user's jobs: a queued one leaves the line at once; a running one is stopped after
   * asking (the output of the cells that finished is kept). `false` when the user changed their mind.
   */
  async cancelJob(job: IBerthJob): Promise<boolean> {
    const trans = this.trans;
    if (job.status === 'running') {
      const result = await showDialog({
        title: trans.__('Stop this job?'),
        body: trans.__('%1 will be stopped; the output of the cells that finished is kept.', job.name),
        buttons: [Dialog.cancelButton({ label: trans.__('Keep running') }), Dialog.warnButton({ label: trans.__('Stop job') })],
        defaultButton: 0
      });
      if (!result.button.accept) {
        return false;
      }
    }
    await this.api.cancelJob(job.id);
    await this.options.model.refreshLive();
    return true;
  }

  /** Save `choice` as the user's default profile (used by kernels started without parameters). */
  async saveDefault(choice: IChoice): Promise<void> {
    this.options.model.profile = await this.api.saveProfile({ request: choiceResources(choice), image: choice.image });
  }

  /** Create a Jupyter session for `path` on an already started kernel. */
  private async attachSession(path: string, type: string, name: string, kernel: IStartedKernel): Promise<void> {
    // The sessions REST API takes a kernel id (the client's SessionManager only a name).
    const { serviceManager } = this.options.app;
    const settings = serviceManager.serverSettings;
    const response = await ServerConnection.makeRequest(
      URLExt.join(settings.baseUrl, 'api/sessions'),
      { method: 'POST', body: JSON.stringify({ path, type, name, kernel: { id: kernel.id } }) },
      settings
    );
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      throw new BerthRequestError(messageFromResponse(response.status, response.statusText, body, 'POST api/sessions'), response.status);
    }
    await serviceManager.sessions.refreshRunning();
  }

  private startRequest(choice: IChoice, path: string) {
    return {
      ...(choice.image ? { image: choice.image } : {}),
      resources: choiceResources(choice),
      ...(choice.folders.length ? { folders: choice.folders } : {}),
      path
    };
  }

  /** A quota refusal that releasing the old kernel would cure. */
  private oldKernelInTheWay(error: unknown, choice: IChoice, bounds: IBounds, old: IResources): boolean {
    const status = (error as BerthRequestError).status;
    if (status !== 403 && status !== 409) {
      return false;
    }
    const kernelsLeft = this.options.model.policy?.remaining.kernels;
    const noKernelLeft = typeof kernelsLeft === 'number' && kernelsLeft < 1;
    const fitsOnlyWithout = overQuota(choice, bounds).length > 0 && overQuota(choice, bounds, old).length === 0;
    return fitsOnlyWithout || (noKernelLeft && overQuota(choice, bounds, old).length === 0);
  }
}
