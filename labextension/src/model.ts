/**
 * What the sidebar and the status bar show, loaded from the Berth API and kept fresh.
 *
 * The catalog (images, presets, folders, profile) is loaded on demand; the live part
 * (running kernels with their usage, the policy with what is left, the GPUs) is polled
 * every `refreshInterval` seconds while the page is visible. Each part keeps its own
 * error, so a missing route (say, folders) leaves the rest working.
 */

import { ISignal, Signal } from '@lumino/signaling';

import { BerthAPI } from './api';
import { cpuRate, IUsageSample } from './format';
import type {
  IBerthJob,
  IBerthKernel,
  IFolder,
  IGpus,
  IImage,
  IInfo,
  IMyBudget,
  IPolicyState,
  IPreset,
  IProfile,
  IQueuedStart
} from './types';

export type Part =
  | 'info'
  | 'presets'
  | 'images'
  | 'folders'
  | 'policy'
  | 'gpus'
  | 'kernels'
  | 'profile'
  | 'queue'
  | 'budget'
  | 'jobs';

/** The parts polled while the page is visible. */
export const LIVE_PARTS: Part[] = ['kernels', 'policy', 'gpus', 'queue', 'budget', 'jobs'];

export class BerthModel {
  constructor(readonly api: BerthAPI = new BerthAPI()) {}

  info: IInfo | null = null;
  presets: IPreset[] = [];
  images: IImage[] = [];
  folders: IFolder[] = [];
  policy: IPolicyState | null = null;
  gpus: IGpus | null = null;
  kernels: IBerthKernel[] = [];
  profile: IProfile | null = null;
  /** the user's starts waiting for room */
  queue: IQueuedStart[] = [];
  budget: IMyBudget | null = null;
  jobs: IBerthJob[] = [];
  /** the server's message per part that failed to load */
  readonly errors: Partial<Record<Part, string>> = {};
  /** cores in use per kernel id, from the last two samples */
  readonly cpuInUse = new Map<string, number | null>();
  /** `true` once the first full load finished (successfully or not) */
  loaded = false;

  get changed(): ISignal<this, Part | 'all'> {
    return this._changed;
  }

  /** The Berth kernel with this id, if it is one of the user's running Berth kernels. */
  kernel(kernelId: string | null | undefined): IBerthKernel | undefined {
    return kernelId ? this.kernels.find(k => k.kernel_id === kernelId) : undefined;
  }

  /** Load everything (the sidebar's first paint, or its refresh button). */
  async loadAll(): Promise<void> {
    await Promise.all(
      (['info', 'presets', 'images', 'folders', 'profile', ...LIVE_PARTS] as Part[]).map(p => this.load(p))
    );
    this.loaded = true;
    this._changed.emit('all');
  }

  /** Load the live parts: kernels with usage, the policy's remaining quota, GPU shares, the queue, budgets, jobs. */
  async refreshLive(): Promise<void> {
    await Promise.all(LIVE_PARTS.map(p => this.load(p)));
  }

  /** Load one part; a failure is kept as that part's error and reported through `changed`. */
  async load(part: Part): Promise<void> {
    try {
      switch (part) {
        case 'info':
          this.info = await this.api.info();
          break;
        case 'presets':
          this.presets = await this.api.presets();
          break;
        case 'images':
          this.images = await this.api.images();
          break;
        case 'folders':
          this.folders = await this.api.folders();
          break;
        case 'policy':
          this.policy = await this.api.policy();
          break;
        case 'gpus':
          this.gpus = await this.api.gpus();
          break;
        case 'kernels':
          this.setKernels(await this.api.kernels(), Date.now());
          break;
        case 'profile':
          this.profile = await this.api.profile();
          break;
        case 'queue':
          this.queue = await this.api.queue();
          break;
        case 'budget':
          this.budget = await this.api.budget();
          break;
        case 'jobs':
          this.jobs = await this.api.jobs();
          break;
      }
      delete this.errors[part];
    } catch (error) {
      this.errors[part] = (error as Error).message;
    }
    this._changed.emit(part);
  }

  /** Take a new kernel list and work out each kernel's CPU use since the last sample. */
  setKernels(kernels: IBerthKernel[], at: number): void {
    const samples = new Map<string, IUsageSample>();
    for (const k of kernels) {
      const seconds = k.usage?.cpu_seconds;
      if (typeof seconds !== 'number') {
        continue;
      }
      const sample = { at, cpuSeconds: seconds };
      const rate = cpuRate(this._samples.get(k.kernel_id), sample);
      if (rate !== null || !this.cpuInUse.has(k.kernel_id)) {
        this.cpuInUse.set(k.kernel_id, rate);
      }
      samples.set(k.kernel_id, sample);
    }
    for (const id of [...this.cpuInUse.keys()]) {
      if (!samples.has(id)) {
        this.cpuInUse.delete(id);
      }
    }
    this._samples = samples;
    this.kernels = kernels;
  }

  /** Poll the live parts every `seconds` while the page is visible (0 stops polling). */
  startPolling(seconds: number): void {
    this.stopPolling();
    if (!seconds || seconds <= 0) {
      return;
    }
    const tick = async () => {
      if (typeof document === 'undefined' || !document.hidden) {
        await this.refreshLive();
      }
      if (this._pollSeconds === seconds) {
        this._timer = setTimeout(tick, seconds * 1000);
      }
    };
    this._pollSeconds = seconds;
    this._timer = setTimeout(tick, seconds * 1000);
  }

  stopPolling(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
    }
    this._timer = null;
    this._pollSeconds = 0;
  }

  dispose(): void {
    this.stopPolling();
    Signal.clearData(this);
  }

  private _changed = new Signal<this, Part | 'all'>(this);
  private _samples = new Map<string, IUsageSample>();
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _pollSeconds = 0;
}
