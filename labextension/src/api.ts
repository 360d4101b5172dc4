/**
 * The Berth REST API as typed calls (contract: docs/rest-api.md).
 */

import { ServerConnection } from '@jupyterlab/services';

import { normalizePolicy } from './format';
import { requestAPI } from './request';
import type {
  IBerthJob,
  IBerthKernel,
  IMyBudget,
  IQueuedStart,
  IFolder,
  IGpus,
  IImage,
  IInfo,
  IPolicyState,
  IPreset,
  IProfile,
  IResolvedEnvironment,
  IStartRequest,
  IStartedKernel
} from './types';

/** Pick the list out of an answer that is either a list or an object holding it under one of `keys`. */
export function listFrom<T>(data: unknown, keys: string[]): T[] {
  if (Array.isArray(data)) {
    return data as T[];
  }
  if (data && typeof data === 'object') {
    for (const key of keys) {
      const value = (data as Record<string, unknown>)[key];
      if (Array.isArray(value)) {
        return value as T[];
      }
    }
  }
  return [];
}

export class BerthAPI {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  private get<T>(endpoint: string): Promise<T> {
    return requestAPI<T>(endpoint, { method: 'GET' }, this.settings);
  }

  private send<T>(method: string, endpoint: string, body?: unknown): Promise<T> {
    return requestAPI<T>(
      endpoint,
      { method, body: body === undefined ? undefined : JSON.stringify(body), headers: { 'Content-Type': 'application/json' } },
      this.settings
    );
  }

  info(): Promise<IInfo> {
    return this.get<IInfo>('info');
  }

  async presets(): Promise<IPreset[]> {
    return listFrom<IPreset>(await this.get('presets'), ['presets', 'items']);
  }

  async images(): Promise<IImage[]> {
    return listFrom<IImage>(await this.get('images'), ['images', 'items']);
  }

  async folders(): Promise<IFolder[]> {
    return listFrom<IFolder>(await this.get('folders'), ['folders', 'items']);
  }

  async policy(): Promise<IPolicyState> {
    return normalizePolicy(await this.get('policy'));
  }

  async gpus(): Promise<IGpus> {
    const data = await this.get<Partial<IGpus>>('gpus');
    return {
      devices: data.devices ?? [],
      free: data.free ?? {},
      shareable: data.shareable,
      quantum: data.quantum,
      metrics: data.metrics,
      source: data.source,
      message: data.message
    };
  }

  async kernels(): Promise<IBerthKernel[]> {
    return listFrom<IBerthKernel>(await this.get('kernels'), ['kernels', 'items']);
  }

  profile(): Promise<IProfile> {
    return this.get<IProfile>('profile');
  }

  saveProfile(profile: IProfile): Promise<IProfile> {
    return this.send<IProfile>('PUT', 'profile', profile);
  }

  startKernel(request: IStartRequest): Promise<IStartedKernel> {
    return this.send<IStartedKernel>('POST', 'kernels', request);
  }

  /** What a notebook's stored environment gets on this server (`POST berth/api/images/resolve`). */
  resolveEnvironment(environment: { image: string; digest?: string | null }): Promise<IResolvedEnvironment> {
    const body: { image: string; digest?: string } = { image: environment.image };
    if (environment.digest) {
      body.digest = environment.digest;
    }
    return this.send<IResolvedEnvironment>('POST', 'images/resolve', body);
  }

  async stopKernel(kernelId: string): Promise<void> {
    await this.send<unknown>('DELETE', `kernels/${encodeURIComponent(kernelId)}`);
  }

  /** The user's starts waiting in the kernel start queue, each with how many wait ahead. */
  async queue(): Promise<IQueuedStart[]> {
    return listFrom<IQueuedStart>(await this.get('queue'), ['waiting']);
  }

  /** Take a waiting start out of the line (`DELETE berth/api/queue/<id>`); its start then fails, saying so. */
  async cancelQueuedStart(kernelId: string): Promise<void> {
    await this.send<unknown>('DELETE', `queue/${encodeURIComponent(kernelId)}`);
  }

  /** The user's budgets with what is left (`GET berth/api/budget`). */
  budget(): Promise<IMyBudget> {
    return this.get<IMyBudget>('budget');
  }

  /** The user's batch jobs, newest first. */
  async jobs(): Promise<IBerthJob[]> {
    return listFrom<IBerthJob>(await this.get('jobs'), ['jobs']);
  }

  /** Cancel a queued or running job; the job as it ended. */
  cancelJob(jobId: string): Promise<IBerthJob> {
    return this.send<IBerthJob>('DELETE', `jobs/${encodeURIComponent(jobId)}`);
  }
}
