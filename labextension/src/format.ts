/**
 * Pure functions of the sidebar: how sizes, CPU and GPU shares read, what the policy
 * lets the controls reach, and how live usage is computed. No JupyterLab imports here,
 * so all of it is unit-tested in node (tests/format.test.ts).
 */

import type {
  IAmounts,
  IChoice,
  IFolder,
  IImage,
  IKernelUsage,
  IPolicyLimits,
  IPolicyState,
  IProfile,
  IResources,
  Limit
} from './types';

export const KiB = 1024;
export const MiB = 1024 ** 2;
export const GiB = 1024 ** 3;
export const TiB = 1024 ** 4;

/** Trim a number to at most `digits` decimals, without trailing zeros: 1.50 → "1.5". */
export function trimNumber(value: number, digits = 2): string {
  if (!Number.isFinite(value)) {
    return value > 0 ? '∞' : '-∞';
  }
  return String(Number(value.toFixed(digits)));
}

/** `536870912` → `"512 MiB"`, `4294967296` → `"4 GiB"`, `1610612736` → `"1.5 GiB"` (binary units, as Docker reads them). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) {
    return 'unlimited';
  }
  const units: [string, number][] = [
    ['TiB', TiB],
    ['GiB', GiB],
    ['MiB', MiB],
    ['KiB', KiB]
  ];
  for (const [unit, size] of units) {
    if (Math.abs(bytes) >= size) {
      return `${trimNumber(bytes / size)} ${unit}`;
    }
  }
  return `${Math.round(bytes)} B`;
}

/** `2` → `"2 CPU"`, `0.5` → `"0.5 CPU"`. */
export function formatCpu(cores: number): string {
  return Number.isFinite(cores) ? `${trimNumber(cores)} CPU` : 'unlimited CPU';
}

const VULGAR_FRACTIONS: [number, string][] = [
  [1 / 8, '⅛'],
  [1 / 6, '⅙'],
  [1 / 5, '⅕'],
  [1 / 4, '¼'],
  [1 / 3, '⅓'],
  [3 / 8, '⅜'],
  [2 / 5, '⅖'],
  [1 / 2, '½'],
  [3 / 5, '⅗'],
  [5 / 8, '⅝'],
  [2 / 3, '⅔'],
  [3 / 4, '¾'],
  [4 / 5, '⅘'],
  [5 / 6, '⅚'],
  [7 / 8, '⅞']
];

/** A GPU share as people say it: `0.25` → `"¼ GPU"`, `1` → `"1 GPU"`, `2` → `"2 GPU"`, `0.3` → `"0.3 GPU"`, `0` → `"no GPU"`. */
export function formatGpu(share: number): string {
  if (!share || share <= 0) {
    return 'no GPU';
  }
  if (!Number.isFinite(share)) {
    return 'unlimited GPU';
  }
  if (share < 1) {
    // Shares are stored with 4 decimals (⅓ is 0.3333).
    const match = VULGAR_FRACTIONS.find(([value]) => Math.abs(value - share) < 5e-4);
    if (match) {
      return `${match[1]} GPU`;
    }
  }
  return `${trimNumber(share, 3)} GPU`;
}

/** The short name of an image reference: `"berth/python:3.11"` → `"python:3.11"`. */
export function imageShortName(ref: string | null | undefined): string {
  if (!ref) {
    return '';
  }
  const withoutDigest = ref.split('@')[0];
  const parts = withoutDigest.split('/');
  return parts[parts.length - 1];
}

/** The kernel's limits in one line: `"2 CPU · 4 GiB · ¼ GPU · python:3.11"` (no GPU part when it has none). */
export function describeLimits(resources: Partial<IResources>, image?: string | null): string {
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
  /** the GPU shares offered in the GPU control, ascending, starting at 0 */
  gpuOptions: number[];
}

/** What the sidebar uses where the policy sets no per-kernel limit. */
export interface IBoundSettings {
  cpuStep: number;
  memoryStep: number;
  unlimitedCpu: number;
  unlimitedMemory: number;
}

export const DEFAULT_BOUND_SETTINGS: IBoundSettings = {
  cpuStep: 0.25,
  memoryStep: 128 * MiB,
  unlimitedCpu: 8,
  unlimitedMemory: 32 * GiB
};

/** The GPU shares a control offers up to `max`: fractions below one device, then whole devices. */
export function gpuOptions(max: number, devices = Infinity): number[] {
  const upper = Math.min(max, Number.isFinite(devices) ? devices : max);
  const options = [0];
  for (const share of [0.125, 0.25, 0.5, 0.75, 1]) {
    if (share <= upper + 1e-9) {
      options.push(share);
    }
  }
  for (let n = 2; n <= Math.min(upper, 16); n++) {
    options.push(n);
  }
  return options;
}

/**
 * The bounds of the CPU, memory and GPU controls from the user's policy.
 *
 * A control reaches the per-kernel maximum (`max_cpu`, `max_mem`, `max_gpu`), or the
 * settings' fallback where the policy sets none; `remaining` is what is left of the
 * user's totals, shown next to the control (a request over it is refused by the server,
 * whose message the sidebar shows).
 */
export function boundsFromPolicy(
  policy: IPolicyState | null,
  settings: IBoundSettings = DEFAULT_BOUND_SETTINGS,
  gpuDevices = Infinity
): IBounds {
  const limits = policy?.limits ?? {};
  const remaining = policy?.remaining ?? {};
  const maxCpu = limitNumber(limits.max_cpu);
  const maxMem = limitNumber(limits.max_mem);
  const maxGpu = limits.max_gpu === undefined ? 0 : limitNumber(limits.max_gpu);

  const cpuMax = Number.isFinite(maxCpu) ? maxCpu : settings.unlimitedCpu;
  const memMax = Number.isFinite(maxMem) ? maxMem : settings.unlimitedMemory;
  const gpuMax = Number.isFinite(maxGpu) ? maxGpu : Number.isFinite(gpuDevices) ? gpuDevices : 1;
  const options = gpuOptions(gpuMax, gpuDevices);
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
    gpuOptions: options
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

/** Keep a choice inside the bounds (used when the policy changes under it). */
export function clampChoice(choice: IChoice, bounds: IBounds): IChoice {
  return {
    ...choice,
    cpu: clampTo(choice.cpu, bounds.cpu),
    mem: Math.round(clampTo(choice.mem, bounds.mem)),
    gpu: nearestGpuOption(choice.gpu, bounds.gpuOptions)
  };
}

/** Which parts of a choice exceed what is left of the user's quota (empty when it fits). */
export function overQuota(choice: Pick<IChoice, 'cpu' | 'mem' | 'gpu'>, bounds: IBounds, released?: Partial<IResources>): string[] {
  const over: string[] = [];
  const back = { cpu: released?.cpu ?? 0, mem: released?.mem ?? 0, gpu: released?.gpu ?? 0 };
  if (choice.cpu > bounds.cpu.remaining + back.cpu + 1e-9) {
    over.push(`CPU: ${formatCpu(choice.cpu)} asked, ${formatCpu(Math.max(0, bounds.cpu.remaining + back.cpu))} left`);
  }
  if (choice.mem > bounds.mem.remaining + back.mem) {
    over.push(`memory: ${formatBytes(choice.mem)} asked, ${formatBytes(Math.max(0, bounds.mem.remaining + back.mem))} left`);
  }
  if (choice.gpu > bounds.gpu.remaining + back.gpu + 1e-9) {
    over.push(`GPU: ${formatGpu(choice.gpu)} asked, ${formatGpu(Math.max(0, bounds.gpu.remaining + back.gpu))} left`);
  }
  return over;
}

/** The resources part of a start request or profile, from a choice. */
export function choiceResources(choice: IChoice): Pick<IResources, 'cpu' | 'mem' | 'gpu'> {
  return { cpu: choice.cpu, mem: choice.mem, gpu: choice.gpu };
}

/** The choice the sidebar opens with: the saved profile, else the policy's default, else 1 CPU / 1 GiB. */
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
    gpu: toNumber(policyDefault.gpu ?? policyDefault.gpus)
  };
  const saved = profile?.request ?? {};
  const pick = (key: 'cpu' | 'mem' | 'gpu') =>
    (key === 'mem' ? sizeOf(saved.mem) : toNumber(saved[key])) ?? fromPolicy[key] ?? fallback[key];
  const offered = offeredImages(images);
  const savedImage = profile?.image && offered.some(i => i.ref === profile.image) ? profile.image : null;
  const defaultImage = offered.find(i => i.default)?.ref ?? offered[0]?.ref ?? null;
  return clampChoice(
    { image: savedImage ?? defaultImage, cpu: pick('cpu'), mem: pick('mem'), gpu: pick('gpu'), folders: [] },
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

// ---------------------------------------------------------------- images

/** Images a user can pick: the catalog's offered ones (not hidden or retired). */
export function offeredImages(images: IImage[]): IImage[] {
  return images.filter(i => !['hidden', 'retired', 'removed'].includes(String(i.state ?? 'offered')));
}

export interface IImageVersion {
  ref: string;
  version: string;
  image: IImage;
}

export interface IEnvironment {
  /** the reference without its tag: `berth/python` */
  key: string;
  /** what people read: `Python` */
  label: string;
  versions: IImageVersion[];
}

/** Split `name:tag` (a registry port is not a tag): `"host:5000/a/b:1.0"` → `["host:5000/a/b", "1.0"]`. */
export function splitRef(ref: string): [string, string] {
  const noDigest = ref.split('@')[0];
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  if (colon > slash) {
    return [noDigest.slice(0, colon), noDigest.slice(colon + 1)];
  }
  return [noDigest, 'latest'];
}

/** Group the offered images into environments, each with its versions (newest first). */
export function groupImages(images: IImage[]): IEnvironment[] {
  const byKey = new Map<string, IEnvironment>();
  for (const image of offeredImages(images)) {
    const [key, tag] = splitRef(image.ref);
    const version = String(image.label_version ?? tag);
    let env = byKey.get(key);
    if (!env) {
      env = { key, label: environmentLabel(image, version, key), versions: [] };
      byKey.set(key, env);
    }
    env.versions.push({ ref: image.ref, version, image });
  }
  for (const env of byKey.values()) {
    env.versions.sort((a, b) => compareVersions(b.version, a.version));
  }
  return [...byKey.values()].sort((a, b) => a.label.localeCompare(b.label));
}

function environmentLabel(image: IImage, version: string, key: string): string {
  const display = String(image.display_name ?? '');
  if (display && display !== image.ref) {
    const suffix = ` ${version}`;
    return display.endsWith(suffix) ? display.slice(0, -suffix.length) : display;
  }
  const name = key.split('/').pop() ?? key;
  return name.charAt(0).toUpperCase() + name.slice(1);
}

/** Compare dotted versions numerically where they are numbers: `"3.10" > "3.9"`. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.\-+]/);
  const pb = b.split(/[.\-+]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    const nx = Number(x);
    const ny = Number(y);
    const c = x !== '' && y !== '' && !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y);
    if (c !== 0) {
      return c;
    }
  }
  return 0;
}

/** What the sidebar shows about an image: its frameworks, size and whether it supports GPUs. */
export function imageFacts(image: IImage | undefined): { frameworks: string[]; size: string; gpu: boolean; digest: string } {
  if (!image) {
    return { frameworks: [], size: '', gpu: false, digest: '' };
  }
  const frameworks = String(image.label_frameworks ?? '')
    .split(',')
    .map(s => s.trim())
    .filter(Boolean);
  const digest = String(image.digest ?? '');
  return {
    frameworks,
    size: image.size ? formatBytes(image.size) : '',
    gpu: String(image.label_gpu ?? 'false').toLowerCase() === 'true',
    digest: digest.replace(/^.*@/, '').slice(0, 19)
  };
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
  return Number.isFinite(value) ? `${format(Math.max(0, value))} left` : 'no total limit';
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
  if (minutes < 60) {
    return `${minutes} min`;
  }
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${minutes % 60} min`;
}
