/**
 * The GPU offer of the sidebar, with devices declared as in the server's config (this
 * machine has no GPU): bounded by the policy and by the devices' free shares.
 */
import { describeDevice, describeGpuUse, fractionSteps, gpuMemoryCap, gpuOffer } from '../src/gpu';
import type { IGpus } from '../src/types';

const GiB = 1024 ** 3;

function declared(free: Record<string, number>, extra: Partial<IGpus> = {}): IGpus {
  return {
    devices: Object.keys(free).map((uuid, index) => ({ uuid, index, name: `declared ${index}`, memory_bytes: 16 * GiB })),
    free,
    shareable: Object.keys(free),
    quantum: 0.25,
    source: 'declared',
    message: '',
    ...extra
  };
}

describe('fractionSteps', () => {
  it('offers every multiple of a coarse quantum', () => {
    expect(fractionSteps(0.25)).toEqual([0.25, 0.5, 0.75]);
    expect(fractionSteps(0.1)).toEqual([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
  });
  it('keeps a friendly subset of a fine quantum, each a multiple of it', () => {
    const steps = fractionSteps(0.05);
    expect(steps).toEqual([0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9]);
    expect(fractionSteps(0.01)).not.toContain(0.125);
  });
  it('has no fraction for a whole-device quantum or a bad one', () => {
    expect(fractionSteps(1)).toEqual([]);
    expect(fractionSteps(0)).toEqual([]);
    expect(fractionSteps(-0.5)).toEqual([]);
  });
});

describe('gpuOffer with declared devices', () => {
  it('is bounded by the policy when the devices are free', () => {
    const offer = gpuOffer(declared({ a: 1, b: 1 }), 0.5);
    expect(offer.options).toEqual([0, 0.25, 0.5]);
    expect(offer.wholeFree).toBe(2);
    expect(offer.note).toBe('at most ½ GPU per kernel · largest free share 1 GPU · 2 whole devices free');
  });
  it('is bounded by the largest free share on a shareable device', () => {
    const offer = gpuOffer(declared({ a: 0.25, b: 0.5 }), Infinity);
    expect(offer.options).toEqual([0, 0.25, 0.5]);
    expect(offer.largestFree).toBe(0.5);
    expect(offer.wholeFree).toBe(0);
  });
  it('offers whole devices only as many as are wholly free and the policy allows', () => {
    expect(gpuOffer(declared({ a: 1, b: 1, c: 0.5 }), 2).options).toEqual([0, 0.25, 0.5, 0.75, 1, 2]);
    expect(gpuOffer(declared({ a: 1, b: 1, c: 1 }), Infinity).options).toEqual([0, 0.25, 0.5, 0.75, 1, 2, 3]);
  });
  it('gives no fraction on a device that is not shareable (MIG or excluded by the admin)', () => {
    const offer = gpuOffer(declared({ a: 1, b: 0.5 }, { shareable: ['b'] }), Infinity);
    expect(offer.options).toEqual([0, 0.25, 0.5, 1]);
  });
  it('says why nothing is offered', () => {
    expect(gpuOffer(declared({ a: 1 }), 0)).toMatchObject({ options: [0], note: 'Your policy allows no GPU.' });
    const full = gpuOffer(declared({ a: 0, b: 0 }), 1);
    expect(full.options).toEqual([0]);
    expect(full.note).toMatch(/^No GPU share is free right now · /);
    expect(gpuOffer({ devices: [], free: {}, message: 'no NVIDIA GPU on this host' }, 1).note).toBe('no NVIDIA GPU on this host');
    expect(gpuOffer(null, 1).options).toEqual([0]);
  });
});

describe('describeDevice', () => {
  it('labels declared devices as declared', () => {
    const d = { uuid: 'GPU-a', index: 0, name: 'Declared T4', memory_bytes: 16 * GiB, declared: true };
    expect(describeDevice(d, 0)).toBe('0: Declared T4 · 16 GiB · declared');
  });
  it("adds NVML's live use where there is some", () => {
    const d = { uuid: 'GPU-b', index: 1, name: 'Tesla T4', memory: '15 GiB', mig_mode: false };
    const m = { utilization_percent: 35, memory_used_bytes: 3 * GiB, memory_total_bytes: 15 * GiB };
    expect(describeDevice(d, 1, m)).toBe('1: Tesla T4 · 15 GiB · 35% busy · 3 GiB of 15 GiB used');
    expect(describeDevice({ uuid: 'GPU-c', mig_mode: true }, 2, { utilization_percent: null })).toBe('2: GPU-c · MIG');
  });
});

describe("a kernel's GPU memory", () => {
  const gpus = declared({ a: 0.75, b: 1 });
  it('has a budget of share × device memory', () => {
    expect(gpuMemoryCap([{ uuid: 'a', share: 0.25 }], gpus)).toBe(4 * GiB);
    expect(gpuMemoryCap([{ uuid: 'a', share: 1 }, { uuid: 'b', share: 1 }], gpus)).toBe(32 * GiB);
    expect(gpuMemoryCap([{ uuid: 'unknown', share: 0.5 }], gpus)).toBe(0);
    expect(gpuMemoryCap(undefined, null)).toBe(0);
  });
  it("shows NVML's memory in use against the budget, or what was allotted", () => {
    expect(describeGpuUse(0.25, GiB, 4 * GiB)).toEqual({ value: 0.25, text: '1 GiB of 4 GiB (¼ GPU)' });
    expect(describeGpuUse(0.25, undefined, 4 * GiB)).toEqual({ value: 0, text: '¼ GPU allotted' });
    expect(describeGpuUse(0.5, 3 * GiB, 0)).toEqual({ value: 0, text: '3 GiB · ½ GPU' });
  });
});
