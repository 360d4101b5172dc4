/**
 * Pure functions of the sidebar: how sizes, CPU and GPU shares read, what the policy
 * lets the controls reach, and how live usage is computed. No JupyterLab imports here,
 * so all of it is unit-tested in node (tests/format.test.ts).
 */

import type {
  IAmounts,
  IChoice,
  IFolder,
  IGpus,
  IImage,
  IKernelUsage,
  IPolicyLimits,
  IPolicyState,
  IProfile,
  IResources,
  Limit
} from './types';

import { clampDerivedDisk, DEFAULT_DISK } from './disk';
import { gpuOffer } from './gpu';
import { offeredImages } from './images';
import { formatBytes, formatCpu, formatGpu, GiB, KiB, MiB, TiB } from './units';

export { formatBytes, formatCpu, formatGpu, GiB, KiB, MiB, TiB, trimNumber } from './units';

/** The short name of an image reference: `"berth/python:3.11"` → `"python:3.11"`. */
export function imageShortName(ref: string | null | undefined): string {
  if (!ref) {
    return '';
  }
  const withoutDigest = ref.split('@')[0];
  const parts = withoutDigest.split('/');
  return parts[parts.length - 1];
}

/**
 * The kernel's limits in one line: `"2 CPU · 4 GiB · ¼ GPU · python:3.11"` (no GPU part when it has none);
 * `extra` parts (the disk limit, disk.ts `diskLabel`) go before the image.
 */
export function describeLimits(resources: Partial<IResources>, image?: string | null, extra: string[] = []): string {
  const parts: string[] = [];
  if (resources.cpu !== undefined) {
    parts.push(formatCpu(resources.cpu));
  }
  if (resources.mem !== undefined) {
    parts.push(formatBytes(resources.mem));
  }
  if (resources.gpu) {
    parts.push(formatGpu(resources.gpu));
  }
  parts.push(...extra);
  if (image) {
    parts.push(imageShortName(image));
  }
  return parts.join(' · ');
}

/** A limit as a number: `"unlimited"`, `null` and absent are `Infinity`. */
export function limitNumber(limit: Limit): number {
  if (limit === null || limit === undefined || limit === 'unlimited') {
    return Infinity;
  }
  const n = Number(limit);
  return Number.isNaN(n) ? Infinity : n;
}

/** Parse a size people type (`"512M"`, `"4G"`, `"1.5GiB"`, `"1073741824"`) into bytes; `null` when it is not a size. */
export function parseSize(text: string): number | null {
  const m = /^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b?)\s*$/i.exec(text);
  if (!m) {
    return null;
  }
  const unit = { '': 1, k: KiB, m: MiB, g: GiB, t: TiB }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  const value = parseFloat(m[1]) * unit;
  return value > 0 ? Math.round(value) : null;
}

/** Accept the policy answer with the limits either under `policy` or at the top level. */
export function normalizePolicy(json: any): IPolicyState {
  const data = json ?? {};
  const limits: IPolicyLimits = data.policy && typeof data.policy === 'object' ? data.policy : data;
  return {
    limits,
    usage: (data.usage ?? {}) as IAmounts,
    remaining: (data.remaining ?? {}) as IAmounts,
    defaultRequest: data.default_request && typeof data.default_request === 'object' ? data.default_request : null
  };
}

/** How far a control may go, and what is left of the user's quota for it. */
export interface IBound {
  min: number;
  max: number;
  step: number;
  /** what is left of the user's total (Infinity when there is no total) */
  remaining: number;
  /** `true` when the per-kernel maximum is the policy's (not the settings' fallback) */
  fromPolicy: boolean;
}

export interface IBounds {
  cpu: IBound;
  mem: IBound;
  gpu: IBound;
  /** in bytes, as memory; `min` is the slider's (the field takes down to disk.ts `MIN_DISK`) */
  disk: IBound;
  /** the GPU shares offered in the GPU control, ascending, starting at 0 */
  gpuOptions: number[];
  /** what bounds the GPU offer, for the control's hint */
  gpuNote: string;
}

/** What the sidebar uses where the policy sets no per-kernel limit. */
export interface IBoundSettings {
  cpuStep: number;
  memoryStep: number;
  unlimitedCpu: number;
  unlimitedMemory: number;
  diskStep: number;
  unlimitedDisk: number;
}

export const DEFAULT_BOUND_SETTINGS: IBoundSettings = {
  cpuStep: 0.25,
  memoryStep: 128 * MiB,
  unlimitedCpu: 8,
  unlimitedMemory: 32 * GiB,
  diskStep: GiB,
  unlimitedDisk: 100 * GiB
};

/**
 * The bounds of the CPU, memory and GPU controls from the user's policy.
 *
 * A control reaches the per-kernel maximum (`max_cpu`, `max_mem`, `max_gpu`), or the
 * settings' fallback where the policy sets none; `remaining` is what is left of the
 * user's totals, shown next to the control (a request over it is refused by the server,
 * whose message the sidebar shows). The GPU offer also follows the devices' free shares
 * (`gpus`, from `GET berth/api/gpus`; see gpu.ts).
 */
export function boundsFromPolicy(
  policy: IPolicyState | null,
  settings: IBoundSettings = DEFAULT_BOUND_SETTINGS,
  gpus: IGpus | null = null
): IBounds {
  const limits = policy?.limits ?? {};
  const remaining = policy?.remaining ?? {};
  const maxCpu = limitNumber(limits.max_cpu);
  const maxMem = limitNumber(limits.max_mem);
  const maxGpu = limits.max_gpu === undefined ? 0 : limitNumber(limits.max_gpu);
  const maxDisk = limitNumber(limits.max_disk);

  const cpuMax = Number.isFinite(maxCpu) ? maxCpu : settings.unlimitedCpu;
  const memMax = Number.isFinite(maxMem) ? maxMem : settings.unlimitedMemory;
  const diskMax = Number.isFinite(maxDisk) ? maxDisk : settings.unlimitedDisk;
  const offer = gpuOffer(gpus, maxGpu);
  const options = offer.options;
  return {
    cpu: {
      min: Math.min(settings.cpuStep, cpuMax),
      max: cpuMax,
      step: settings.cpuStep,
      remaining: limitNumber(remaining.cpu),
      fromPolicy: Number.isFinite(maxCpu)
    },
    mem: {
      min: Math.min(settings.memoryStep, memMax),
      max: memMax,
      step: settings.memoryStep,
      remaining: limitNumber(remaining.mem),
      fromPolicy: Number.isFinite(maxMem)
    },
    gpu: {
      min: 0,
      max: options[options.length - 1],
      step: options.length > 1 ? options[1] : 1,
      remaining: limitNumber(remaining.gpu),
      fromPolicy: Number.isFinite(maxGpu)
    },
    disk: {
      min: Math.min(settings.diskStep, diskMax),
      max: diskMax,
      step: settings.diskStep,
      remaining: limitNumber(remaining.disk),
      fromPolicy: Number.isFinite(maxDisk)
    },
    gpuOptions: options,
    gpuNote: offer.note
  };
}

function clampTo(value: number, bound: IBound): number {
  if (!Number.isFinite(value)) {
    return bound.max;
  }
  return Math.min(bound.max, Math.max(bound.min, value));
}

/** The nearest offered GPU share not above `share`. */
export function nearestGpuOption(share: number, options: number[]): number {
  let best = options[0] ?? 0;
  for (const option of options) {
    if (option <= share + 1e-9) {
      best = option;
    }
  }
  return best;
}

/** Keep a choice inside the bounds (used when the policy changes under it). A typed disk size is left as
 * typed: the field says what is wrong with it (disk.ts `diskProblem`), and the server refuses it. */
export function clampChoice(choice: IChoice, bounds: IBounds): IChoice {
  return {
    ...choice,
    cpu: clampTo(choice.cpu, bounds.cpu),
    mem: Math.round(clampTo(choice.mem, bounds.mem)),
    gpu: nearestGpuOption(choice.gpu, bounds.gpuOptions)
  };
}

/** Which parts of a choice exceed what is left of the user's quota (empty when it fits). */
export function overQuota(
  choice: Pick<IChoice, 'cpu' | 'mem' | 'gpu' | 'disk'>,
  bounds: IBounds,
  released?: Partial<IResources>
): string[] {
  const over: string[] = [];
  const back = { cpu: released?.cpu ?? 0, mem: released?.mem ?? 0, gpu: released?.gpu ?? 0, disk: released?.disk ?? 0 };
  if (choice.cpu > bounds.cpu.remaining + back.cpu + 1e-9) {
    over.push(`CPU: ${formatCpu(choice.cpu)} asked, ${describeRemaining(bounds.cpu.remaining + back.cpu, formatCpu)}`);
  }
  if (choice.mem > bounds.mem.remaining + back.mem) {
    over.push(`memory: ${formatBytes(choice.mem)} asked, ${describeRemaining(bounds.mem.remaining + back.mem, formatBytes)}`);
  }
  if (choice.gpu > bounds.gpu.remaining + back.gpu + 1e-9) {
    over.push(`GPU: ${formatGpu(choice.gpu)} asked, ${describeRemaining(bounds.gpu.remaining + back.gpu, formatGpu)}`);
  }
  if (choice.disk !== undefined && choice.disk > bounds.disk.remaining + back.disk) {
    over.push(`disk: ${formatBytes(choice.disk)} asked, ${describeRemaining(bounds.disk.remaining + back.disk, formatBytes)}`);
  }
  return over;
}

/** The resources part of a start request or profile, from a choice (with `disk` when the choice has one). */
export function choiceResources(choice: IChoice): Pick<IResources, 'cpu' | 'mem' | 'gpu' | 'disk'> {
  const resources: Pick<IResources, 'cpu' | 'mem' | 'gpu' | 'disk'> = { cpu: choice.cpu, mem: choice.mem, gpu: choice.gpu };
  if (choice.disk !== undefined) {
    resources.disk = choice.disk;
  }
  return resources;
}

/**
 * The choice the sidebar opens with: the saved profile, else the policy's default, else 1 CPU / 1 GiB
 * (and 10 GiB of disk, kept within the policy's `max_disk` as the server keeps a default).
 */
export function initialChoice(
  profile: IProfile | null,
  policy: IPolicyState | null,
  images: IImage[],
  bounds: IBounds
): IChoice {
  const fallback = { cpu: 1, mem: GiB, gpu: 0 };
  const policyDefault = (policy?.defaultRequest ?? policy?.limits.default ?? {}) as Record<string, unknown>;
  const fromPolicy = {
    cpu: toNumber(policyDefault.cpu ?? policyDefault.cpus),
    mem: sizeOf(policyDefault.mem ?? policyDefault.memory),
    gpu: toNumber(policyDefault.gpu ?? policyDefault.gpus),
    disk: sizeOf(policyDefault.disk ?? policyDefault.disk_size)
  };
  const saved = profile?.request ?? {};
  const pick = (key: 'cpu' | 'mem' | 'gpu') =>
    (key === 'mem' ? sizeOf(saved.mem) : toNumber(saved[key])) ?? fromPolicy[key] ?? fallback[key];
  const disk = sizeOf(saved.disk) ?? fromPolicy.disk ?? DEFAULT_DISK;
  const offered = offeredImages(images);
  const savedImage = profile?.image && offered.some(i => i.ref === profile.image) ? profile.image : null;
  const defaultImage = offered.find(i => i.default)?.ref ?? offered[0]?.ref ?? null;
  return clampChoice(
    {
      image: savedImage ?? defaultImage,
      cpu: pick('cpu'),
      mem: pick('mem'),
      gpu: pick('gpu'),
      disk: clampDerivedDisk(disk, bounds.disk),
      folders: []
    },
    bounds
  );
}

function toNumber(value: unknown): number | undefined {
  if (value === null || value === undefined || value === '') {
    return undefined;
  }
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

function sizeOf(value: unknown): number | undefined {
  if (typeof value === 'number') {
    return value;
  }
  if (typeof value === 'string') {
    return parseSize(value) ?? undefined;
  }
  return undefined;
}

// ---------------------------------------------------------------- folders

/** What a start request names a folder by: its unambiguous reference (`alice/data`, `@class1/materials`), else its name. */
export function folderKey(folder: IFolder): string {
  return typeof folder.reference === 'string' && folder.reference ? folder.reference : folder.name;
}

/** `true` when a folder is mounted read-only in kernels. */
export function folderIsReadOnly(folder: IFolder): boolean {
  if (folder.read_only === true || folder.writable === false) {
    return true;
  }
  const mode = String(folder.mode ?? folder.permission ?? '').toLowerCase();
  return mode === 'ro' || mode === 'read-only' || mode === 'readonly' || mode === 'r';
}

// ---------------------------------------------------------------- live usage

export interface IUsageSample {
  /** milliseconds since the epoch when the sample was read */
  at: number;
  cpuSeconds: number;
}

/** Cores in use between two samples of a kernel's cumulative CPU time (`null` until there are two). */
export function cpuRate(previous: IUsageSample | undefined, current: IUsageSample): number | null {
  if (!previous || current.at <= previous.at) {
    return null;
  }
  const cores = (current.cpuSeconds - previous.cpuSeconds) / ((current.at - previous.at) / 1000);
  return cores < 0 ? null : cores;
}

/** `used / limit` kept within 0…1, for meters (0 when the limit is unknown). */
export function fraction(used: number | null | undefined, limit: number | null | undefined): number {
  if (!used || !limit || !Number.isFinite(limit) || limit <= 0) {
    return 0;
  }
  return Math.min(1, Math.max(0, used / limit));
}

/** One line of a running kernel's memory use: `"312 MiB of 512 MiB"`. */
export function describeMemoryUse(usage: IKernelUsage | undefined, limit: number): string {
  const used = usage?.mem_bytes;
  return used === undefined ? `— of ${formatBytes(limit)}` : `${formatBytes(used)} of ${formatBytes(limit)}`;
}

/** A remaining amount for display: `Infinity` reads "no limit". */
export function describeRemaining(value: number, format: (n: number) => string): string {
  if (!Number.isFinite(value)) {
    return 'no total limit';
  }
  return value <= 0 ? 'none left' : `${format(value)} left`;
}

/** How long a kernel has run: `"3 min"`, `"2 h 5 min"`. */
export function formatUptime(startedAt: string | undefined, now: number = Date.now()): string {
  if (!startedAt) {
    return '';
  }
  const started = Date.parse(startedAt);
  if (Number.isNaN(started)) {
    return '';
  }
  const minutes = Math.max(0, Math.floor((now - started) / 60000));
  if (minutes < 1) {
    return 'under a minute';
  }
  if (minutes < 60) {
    return `${minutes} min`;
  }
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${minutes % 60} min`;
}
