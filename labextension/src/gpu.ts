/**
 * The GPU shares the sidebar offers: multiples of the server's quantum, bounded by the
 * user's policy (`max_gpu` per kernel) and by what the devices have free right now.
 *
 * A fraction (< 1) goes to one shareable device with that much free, so the largest free
 * share on a shareable device bounds the fractions; whole devices need devices with all of
 * their share free. The server decides (and refuses with its own message) in the end; this
 * only keeps the control from offering what cannot be granted. Pure functions, unit-tested
 * in node (tests/gpu.test.ts).
 */

import { formatBytes, formatGpu } from './units';
import type { IGpuMetrics, IGpus } from './types';

/** The fractions shown when the quantum would give too many (each kept only if a multiple of the quantum). */
const FRIENDLY_FRACTIONS = [0.05, 0.1, 0.125, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9];
const MAX_FRACTION_OPTIONS = 12;
const EPSILON = 1e-6;

export interface IGpuOffer {
  /** the shares to offer, ascending, starting at 0 */
  options: number[];
  /** the largest free share on a device fractions may be granted on */
  largestFree: number;
  /** devices with all of their share free */
  wholeFree: number;
  /** one line for the control's hint: what bounds the offer */
  note: string;
}

/**
 * One line about a device for the GPU list: `"0: Tesla T4 · 16 GiB · declared"`, with NVML's
 * live use where there is some (`"· 35% busy · 3 GiB of 16 GiB used"`).
 */
export function describeDevice(device: IGpus['devices'][number], index: number, metrics?: IGpuMetrics | null): string {
  const memory = typeof device.memory === 'string' ? device.memory : device.memory_bytes ? formatBytes(device.memory_bytes) : '';
  const parts = [`${device.index ?? index}: ${device.name ?? device.uuid}`];
  if (memory) {
    parts.push(memory);
  }
  if (device.declared) {
    parts.push('declared');
  }
  if (device.mig_mode) {
    parts.push('MIG');
  }
  if (metrics && typeof metrics.utilization_percent === 'number') {
    parts.push(`${metrics.utilization_percent}% busy`);
  }
  if (metrics && typeof metrics.memory_used_bytes === 'number' && typeof metrics.memory_total_bytes === 'number') {
    parts.push(`${formatBytes(metrics.memory_used_bytes)} of ${formatBytes(metrics.memory_total_bytes)} used`);
  }
  return parts.join(' · ');
}

/** A kernel's GPU memory budget: share × memory of each granted device (0 when unknown). */
export function gpuMemoryCap(grants: { uuid: string; share: number }[] | undefined, gpus: IGpus | null): number {
  let cap = 0;
  for (const grant of grants ?? []) {
    const device = gpus?.devices.find(d => d.uuid === grant.uuid);
    if (device?.memory_bytes) {
      cap += grant.share * device.memory_bytes;
    }
  }
  return Math.round(cap);
}

/** The GPU line of a kernel card: its memory in use (NVML) against its budget, else what it was allotted. */
export function describeGpuUse(share: number, usedBytes: number | null | undefined, cap: number): { value: number; text: string } {
  if (typeof usedBytes !== 'number') {
    return { value: 0, text: `${formatGpu(share)} allotted` };
  }
  if (cap > 0) {
    return { value: Math.min(1, usedBytes / cap), text: `${formatBytes(usedBytes)} of ${formatBytes(cap)} (${formatGpu(share)})` };
  }
  return { value: 0, text: `${formatBytes(usedBytes)} · ${formatGpu(share)}` };
}

function isMultiple(value: number, quantum: number): boolean {
  const ratio = value / quantum;
  return Math.abs(ratio - Math.round(ratio)) < EPSILON;
}

/** The fractions below one device that are multiples of `quantum` (a friendly subset when there are many). */
export function fractionSteps(quantum: number): number[] {
  if (!(quantum > 0) || quantum >= 1) {
    return [];
  }
  const all: number[] = [];
  for (let k = 1; k * quantum < 1 - EPSILON; k++) {
    all.push(Number((k * quantum).toFixed(4)));
  }
  if (all.length <= MAX_FRACTION_OPTIONS) {
    return all;
  }
  return FRIENDLY_FRACTIONS.filter(f => isMultiple(f, quantum));
}

/**
 * What the GPU control offers, from `GET berth/api/gpus` and the policy's per-kernel maximum
 * (`Infinity` when the policy sets none). `gpus === null` (not loaded, or failed) offers no GPU.
 */
export function gpuOffer(gpus: IGpus | null, policyMax: number): IGpuOffer {
  const devices = gpus?.devices ?? [];
  if (!gpus || devices.length === 0) {
    return { options: [0], largestFree: 0, wholeFree: 0, note: gpus?.message || 'No GPU on this host.' };
  }
  if (!(policyMax > 0)) {
    return { options: [0], largestFree: 0, wholeFree: 0, note: 'Your policy allows no GPU.' };
  }
  const free = (uuid: string) => Math.max(0, Math.min(1, Number(gpus.free?.[uuid] ?? 1)));
  const shareable = new Set(gpus.shareable ?? devices.filter(d => !d.mig_mode).map(d => d.uuid));
  const largestFree = Math.max(0, ...devices.filter(d => shareable.has(d.uuid)).map(d => free(d.uuid)));
  const wholeFree = devices.filter(d => free(d.uuid) >= 1 - EPSILON).length;

  const options = [0];
  for (const share of fractionSteps(Number(gpus.quantum ?? 0.05))) {
    if (share <= policyMax + EPSILON && share <= largestFree + EPSILON) {
      options.push(share);
    }
  }
  for (let n = 1; n <= Math.min(policyMax, wholeFree, 16) + EPSILON; n++) {
    options.push(n);
  }

  const parts: string[] = [];
  parts.push(Number.isFinite(policyMax) ? `at most ${formatGpu(policyMax)} per kernel` : 'no per-kernel limit');
  parts.push(`largest free share ${largestFree > 0 ? formatGpu(largestFree) : 'none'}`);
  parts.push(`${wholeFree} whole device${wholeFree === 1 ? '' : 's'} free`);
  if (options.length === 1) {
    parts.unshift('No GPU share is free right now');
  }
  return { options, largestFree, wholeFree, note: parts.join(' · ') };
}
