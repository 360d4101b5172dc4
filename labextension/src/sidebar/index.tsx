/**
 * The Berth sidebar as a Lumino widget for the left area.
 */

import { nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { BerthActions, IKernelWidget } from '../actions';
import { DEFAULT_BOUND_SETTINGS, IBoundSettings } from '../format';
import { BerthModel } from '../model';
import type { IBerthKernel } from '../types';
import { fallbackKernelLabel } from './LiveSections';
import { SidebarView } from './SidebarView';

export interface IBerthSidebarOptions {
  model: BerthModel;
  actions: BerthActions;
  /** the document path a kernel serves, from JupyterLab's running sessions */
  sessionPath: (kernelId: string) => string | null;
  /** the sidebar's strings (JupyterLab's translator, domain `jupyter-berth`); English when absent */
  trans?: TranslationBundle;
}

export class BerthSidebar extends ReactWidget {
  constructor(private options: IBerthSidebarOptions) {
    super();
    this.id = 'jupyter-berth-sidebar';
    this.addClass('jp-BerthSidebar-panel');
    this.trans = options.trans ?? nullTranslator.load('jupyter-berth');
    this.title.caption = this.trans.__('Berth: kernels in quota-bounded containers');
  }

  /** Bounds used where the policy sets no per-kernel limit (from the settings). */
  get boundSettings(): IBoundSettings {
    return this._boundSettings;
  }
  set boundSettings(value: IBoundSettings) {
    this._boundSettings = value;
    this.update();
  }

  /** The notebook or console whose kernel "Apply to current kernel" acts on. */
  get current(): IKernelWidget | null {
    return this._current;
  }
  set current(widget: IKernelWidget | null) {
    this._current = widget;
    this.update();
  }

  protected render(): JSX.Element {
    return (
      <SidebarView
        model={this.options.model}
        actions={this.options.actions}
        boundSettings={this._boundSettings}
        current={this._current}
        kernelLabel={(k: IBerthKernel) => this.options.sessionPath(k.kernel_id) ?? fallbackKernelLabel(k)}
        trans={this.trans}
      />
    );
  }

  readonly trans: TranslationBundle;
  private _boundSettings: IBoundSettings = DEFAULT_BOUND_SETTINGS;
  private _current: IKernelWidget | null = null;
}
