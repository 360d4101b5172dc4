/**
 * The current kernel's limits in the status bar: "2 CPU · 4 GiB · ¼ GPU · python:3.11".
 */

import { nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { IKernelWidget } from './actions';
import { describeLimits } from './format';
import { BerthModel } from './model';

export class KernelLimitsStatus extends Widget {
  constructor(
    private model: BerthModel,
    private trans: TranslationBundle = nullTranslator.load('jupyter-berth')
  ) {
    super();
    this.addClass('jp-BerthStatus');
    this.node.setAttribute('role', 'status');
    this.node.dataset.testid = 'berth-status';
    model.changed.connect(this.refresh, this);
  }

  /** The notebook or console in the main area, if any. */
  set current(widget: IKernelWidget | null) {
    if (this._current) {
      this._current.sessionContext.kernelChanged.disconnect(this.refresh, this);
    }
    this._current = widget;
    if (widget) {
      widget.sessionContext.kernelChanged.connect(this.refresh, this);
    }
    this.refresh();
  }

  /** Whether the settings let the item show at all. */
  get enabled(): boolean {
    return this._enabled;
  }
  set enabled(value: boolean) {
    this._enabled = value;
    this._activeStateChanged.emit();
  }

  /** Whether the status bar should show the item: enabled, and the current kernel is a Berth kernel. */
  get isActive(): boolean {
    return this._enabled && !!this.text;
  }

  /** Emitted when {@link isActive} may have changed (the status bar then shows or hides the item). */
  get activeStateChanged(): ISignal<this, void> {
    return this._activeStateChanged;
  }

  /** The text shown (empty when the current kernel is not a Berth kernel). */
  get text(): string {
    const id = this._current?.sessionContext.session?.kernel?.id;
    const kernel = this.model.kernel(id);
    return kernel ? describeLimits(kernel.resources, kernel.image) : '';
  }

  refresh(): void {
    const text = this.text;
    this.node.textContent = text;
    this.node.title = text ? this.trans.__('Berth kernel limits: %1', text) : '';
    this.node.setAttribute('aria-label', text ? this.trans.__('Kernel limits: %1', text) : this.trans.__('No Berth kernel'));
    if (text !== this._lastText) {
      this._lastText = text;
      this._activeStateChanged.emit();
    }
  }

  dispose(): void {
    this.model.changed.disconnect(this.refresh, this);
    this.current = null;
    super.dispose();
  }

  private _current: IKernelWidget | null = null;
  private _enabled = true;
  private _lastText = '';
  private _activeStateChanged = new Signal<this, void>(this);
}
