import {
  boundsFromPolicy,
  choiceResources,
  clampChoice,
  cpuRate,
  DEFAULT_BOUND_SETTINGS,
  describeLimits,
  describeRemaining,
  folderIsReadOnly,
  folderKey,
  formatBytes,
  formatCpu,
  formatGpu,
  formatUptime,
  fraction,
  GiB,
  imageShortName,
  initialChoice,
  limitNumber,
  MiB,
  normalizePolicy,
  overQuota,
  parseSize
} from '../src/format';
import { compareVersions, groupByLanguage, groupImages, imageFacts, splitRef } from '../src/images';
import type { IGpus, IImage } from '../src/types';

describe('formatBytes', () => {
  it.each([
    [536870912, '512 MiB'],
    [4294967296, '4 GiB'],
    [1610612736, '1.5 GiB'],
    [805306368, '768 MiB'],
    [1024, '1 KiB'],
    [1000, '1000 B'],
    [3 * 1024 ** 4, '3 TiB'],
    [Infinity, 'unlimited']
  ])('%d reads %s', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });
});

describe('formatGpu', () => {
  it.each([
    [0, 'no GPU'],
    [0.25, '¼ GPU'],
    [0.5, '½ GPU'],
    [0.75, '¾ GPU'],
    [0.125, '⅛ GPU'],
    [0.3333, '⅓ GPU'],
    [1, '1 GPU'],
    [2, '2 GPU'],
    [0.3, '0.3 GPU']
  ])('%d reads %s', (share, text) => {
    expect(formatGpu(share)).toBe(text);
  });
});

describe('describeLimits', () => {
  it('reads like the status bar example', () => {
    expect(describeLimits({ cpu: 2, mem: 4 * GiB, gpu: 0.25 }, 'berth/python:3.11')).toBe('2 CPU · 4 GiB · ¼ GPU · python:3.11');
  });
  it('puts extra parts (the disk limit) before the image', () => {
    expect(describeLimits({ cpu: 1, mem: GiB, gpu: 0, disk: 2 * GiB }, 'berth/python:3.11', ['2 GiB disk'])).toBe('1 CPU · 1 GiB · 2 GiB disk · python:3.11');
  });
  it('leaves out a GPU the kernel does not have', () => {
    expect(describeLimits({ cpu: 0.5, mem: 512 * MiB, gpu: 0 }, 'localhost:5000/lab/torch:2.1')).toBe('0.5 CPU · 512 MiB · torch:2.1');
  });
  it('drops the registry and digest of the image', () => {
    expect(imageShortName('reg.example:5000/org/torch:2.1@sha256:abc')).toBe('torch:2.1');
    expect(formatCpu(1.25)).toBe('1.25 CPU');
  });
});

describe('sizes and limits', () => {
  it('parses what people type', () => {
    expect(parseSize('512M')).toBe(512 * MiB);
    expect(parseSize('1.5GiB')).toBe(1.5 * GiB);
    expect(parseSize('4g')).toBe(4 * GiB);
    expect(parseSize('1073741824')).toBe(GiB);
    expect(parseSize('lots')).toBeNull();
    expect(parseSize('0')).toBeNull();
  });
  it('reads "unlimited", null and absent limits as Infinity', () => {
    expect(limitNumber('unlimited')).toBe(Infinity);
    expect(limitNumber(null)).toBe(Infinity);
    expect(limitNumber(undefined)).toBe(Infinity);
    expect(limitNumber(2)).toBe(2);
  });
});

// What GET berth/api/policy answers (core/service.py policy_summary).
/** Two declared 16 GiB devices, all free, fractions in eighths (declared: no GPU here). */
const TWO_GPUS: IGpus = {
  devices: [
    { uuid: 'GPU-a', index: 0, name: 'declared A', memory_bytes: 16 * GiB },
    { uuid: 'GPU-b', index: 1, name: 'declared B', memory_bytes: 16 * GiB }
  ],
  free: { 'GPU-a': 1, 'GPU-b': 1 },
  shareable: ['GPU-a', 'GPU-b'],
  quantum: 0.125,
  source: 'declared',
  message: '2 declared devices'
};

const POLICY = {
  policy: { user: 'ada', groups: [], max_cpu: 2, max_mem: 2 * GiB, max_gpu: 0.5, total_cpu: 'unlimited', total_mem: 3 * GiB, total_gpu: 1, max_kernels: 'unlimited', default: { cpu: 1, mem: '512M' } },
  usage: { cpu: 1, mem: 2 * GiB, gpu: 0.25, kernels: 1 },
  remaining: { cpu: null, mem: GiB, gpu: 0.75, kernels: null },
  default_request: { cpu: 1, mem: 512 * MiB, pids: 512, shm: 64 * MiB, gpu: 0 }
};

describe('boundsFromPolicy', () => {
  it('bounds each control by the per-kernel limit and reports what is left', () => {
    const b = boundsFromPolicy(normalizePolicy(POLICY), DEFAULT_BOUND_SETTINGS, TWO_GPUS);
    expect(b.cpu).toMatchObject({ min: 0.25, max: 2, step: 0.25, remaining: Infinity, fromPolicy: true });
    expect(b.mem).toMatchObject({ min: 128 * MiB, max: 2 * GiB, remaining: GiB, fromPolicy: true });
    expect(b.gpuOptions).toEqual([0, 0.125, 0.25, 0.375, 0.5]);
    expect(b.gpu.max).toBe(0.5);
    expect(b.gpu.remaining).toBe(0.75);
  });
  it('uses the settings where the policy sets no limit', () => {
    const b = boundsFromPolicy(normalizePolicy({ max_cpu: 'unlimited', max_mem: 'unlimited', max_gpu: 0 }), {
      ...DEFAULT_BOUND_SETTINGS,
      unlimitedCpu: 16,
      unlimitedMemory: 64 * GiB
    });
    expect(b.cpu.max).toBe(16);
    expect(b.cpu.fromPolicy).toBe(false);
    expect(b.mem.max).toBe(64 * GiB);
    expect(b.gpuOptions).toEqual([0]);
  });
  it('offers no GPU share when the host has no device', () => {
    const none: IGpus = { devices: [], free: {}, message: 'no NVIDIA GPU on this host (NVML library not found)' };
    const b = boundsFromPolicy(normalizePolicy(POLICY), DEFAULT_BOUND_SETTINGS, none);
    expect(b.gpuOptions).toEqual([0]);
    expect(b.gpuNote).toBe('no NVIDIA GPU on this host (NVML library not found)');
  });
  it('clamps a choice into the bounds', () => {
    const b = boundsFromPolicy(normalizePolicy(POLICY), DEFAULT_BOUND_SETTINGS, TWO_GPUS);
    const c = clampChoice({ image: null, cpu: 8, mem: 16 * GiB, gpu: 0.4, folders: [] }, b);
    expect(c).toMatchObject({ cpu: 2, mem: 2 * GiB, gpu: 0.375 });
    expect(clampChoice({ image: null, cpu: 0, mem: 1, gpu: 0, folders: [] }, b)).toMatchObject({ cpu: 0.25, mem: 128 * MiB });
  });
  it('says which part of a choice is over what is left, counting a kernel it replaces', () => {
    const b = boundsFromPolicy(normalizePolicy(POLICY), DEFAULT_BOUND_SETTINGS, TWO_GPUS);
    const choice = { image: null, cpu: 1, mem: 1.5 * GiB, gpu: 0, folders: [] };
    expect(overQuota(choice, b)).toEqual(['memory: 1.5 GiB asked, 1 GiB left']);
    expect(overQuota(choice, b, { cpu: 1, mem: 512 * MiB, gpu: 0 })).toEqual([]);
    const full = boundsFromPolicy(normalizePolicy({ ...POLICY, remaining: { mem: 0 } }), DEFAULT_BOUND_SETTINGS, TWO_GPUS);
    expect(overQuota({ ...choice, mem: 256 * MiB }, full)).toEqual(['memory: 256 MiB asked, none left']);
    expect(describeRemaining(b.mem.remaining, formatBytes)).toBe('1 GiB left');
    expect(describeRemaining(b.cpu.remaining, formatCpu)).toBe('no total limit');
    expect(describeRemaining(0, formatBytes)).toBe('none left');
  });
  it('bounds the disk by max_disk and flags a disk size over what is left of total_disk', () => {
    const policy = normalizePolicy({
      policy: { max_disk: 20 * GiB, total_disk: 30 * GiB },
      remaining: { disk: 8 * GiB }
    });
    const b = boundsFromPolicy(policy, DEFAULT_BOUND_SETTINGS);
    expect(b.disk).toEqual({ min: GiB, max: 20 * GiB, step: GiB, remaining: 8 * GiB, fromPolicy: true });
    const choice = { image: null, cpu: 1, mem: 512 * MiB, gpu: 0, disk: 10 * GiB, folders: [] };
    expect(overQuota(choice, b)).toEqual(['disk: 10 GiB asked, 8 GiB left']);
    expect(overQuota(choice, b, { cpu: 1, mem: GiB, gpu: 0, disk: 2 * GiB })).toEqual([]);
    expect(overQuota({ ...choice, disk: undefined }, b)).toEqual([]); // no disk asked: not offered here
    // A typed disk size is kept as typed (the field flags it; the server refuses it), not clamped.
    expect(clampChoice({ ...choice, disk: 50 * GiB }, b).disk).toBe(50 * GiB);
    const open = boundsFromPolicy(normalizePolicy({}), { ...DEFAULT_BOUND_SETTINGS, unlimitedDisk: 40 * GiB });
    expect(open.disk).toMatchObject({ max: 40 * GiB, remaining: Infinity, fromPolicy: false });
  });
  it('sends the disk size only when the choice has one', () => {
    expect(choiceResources({ image: null, cpu: 1, mem: GiB, gpu: 0, folders: [] })).toEqual({ cpu: 1, mem: GiB, gpu: 0 });
    expect(choiceResources({ image: null, cpu: 1, mem: GiB, gpu: 0, disk: 2 * GiB, folders: [] })).toEqual({ cpu: 1, mem: GiB, gpu: 0, disk: 2 * GiB });
  });
});

const IMAGES: IImage[] = [
  { ref: 'berth/python:3.11', display_name: 'Python 3.11', size: 309 * MiB, label_version: '3.11', label_frameworks: 'ipykernel 7.4.0, ipython 9.18.1', label_gpu: 'false', digest: 'sha256:0c220c57603f1234567890abcdef' },
  { ref: 'berth/python:3.9', display_name: 'Python 3.9', size: 300 * MiB, label_version: '3.9' },
  { ref: 'berth/python:3.10', display_name: 'Python 3.10', label_version: '3.10', default: true },
  { ref: 'localhost:5000/lab/torch:2.1', display_name: 'PyTorch 2.1', label_version: '2.1', label_gpu: 'true', label_frameworks: 'torch 2.1.0' },
  { ref: 'berth/python:3.8', display_name: 'Python 3.8', state: 'retired' }
];

describe('images', () => {
  it('groups versions under their environment, newest first, without retired ones', () => {
    const envs = groupImages(IMAGES);
    expect(envs.map(e => e.label)).toEqual(['Python', 'PyTorch']);
    expect(envs[0].versions.map(v => v.version)).toEqual(['3.11', '3.10', '3.9']);
    expect(envs[1].key).toBe('localhost:5000/lab/torch');
  });
  it('splits a reference at its tag, not at a registry port', () => {
    expect(splitRef('localhost:5000/lab/torch:2.1')).toEqual(['localhost:5000/lab/torch', '2.1']);
    expect(splitRef('localhost:5000/lab/torch')).toEqual(['localhost:5000/lab/torch', 'latest']);
    expect(compareVersions('3.10', '3.9')).toBeGreaterThan(0);
  });
  it('groups environments by language, Python first, with the frameworks found inside each version', () => {
    const catalog: IImage[] = [
      ...IMAGES,
      { ref: 'berth/r:4.2', display_name: 'R 4.2 (IRkernel)', language: 'R', frameworks: ['IRkernel 1.3.2'] },
      { ref: 'berth/bash:5.2', display_name: 'Bash', language: 'bash', frameworks: ['bash_kernel 0.10.0'] },
      { ref: 'berth/scipy:2024.1', display_name: 'SciPy stack 2024.1', language: 'python', version: '2024.1', gpu: false, frameworks: ['numpy 1.26.4'] },
      { ref: 'berth/scipy:2025.1', display_name: 'SciPy stack 2025.1', language: 'python', frameworks: ['numpy 2.2.6'] }
    ];
    const groups = groupByLanguage(groupImages(catalog));
    expect(groups.map(g => g.label)).toEqual(['Python', 'Bash', 'R']);
    expect(groups[0].environments.map(e => e.label)).toEqual(['Python', 'PyTorch', 'SciPy stack']);
    const scipy = groups[0].environments[2];
    expect(scipy.versions.map(v => [v.version, imageFacts(v.image).frameworks])).toEqual([
      ['2025.1', ['numpy 2.2.6']],
      ['2024.1', ['numpy 1.26.4']]
    ]);
    expect(groups[2].environments[0].versions[0].ref).toBe('berth/r:4.2');
  });
  it('lists frameworks, size and GPU support', () => {
    expect(imageFacts(IMAGES[0])).toEqual({ frameworks: ['ipykernel 7.4.0', 'ipython 9.18.1'], size: '309 MiB', gpu: false, digest: 'sha256:0c220c57603f' });
    expect(imageFacts(IMAGES[3]).gpu).toBe(true);
  });
});

describe('initialChoice', () => {
  const bounds = boundsFromPolicy(normalizePolicy(POLICY), DEFAULT_BOUND_SETTINGS, TWO_GPUS);
  it('starts from the saved profile', () => {
    const c = initialChoice({ request: { cpu: 2, mem: '1G' as unknown as number }, image: 'berth/python:3.9' }, normalizePolicy(POLICY), IMAGES, bounds);
    expect(c).toEqual({ image: 'berth/python:3.9', cpu: 2, mem: GiB, gpu: 0, disk: 10 * GiB, folders: [] });
  });
  it('else from the policy default and the catalog default image', () => {
    const c = initialChoice({ request: {}, image: null }, normalizePolicy(POLICY), IMAGES, bounds);
    expect(c).toEqual({ image: 'berth/python:3.10', cpu: 1, mem: 512 * MiB, gpu: 0, disk: 10 * GiB, folders: [] });
  });
  it('takes the disk size from the profile, else the policy default, kept within max_disk', () => {
    const limited = normalizePolicy({
      ...POLICY,
      policy: { ...POLICY.policy, max_disk: 4 * GiB },
      default_request: { ...POLICY.default_request, disk: 2 * GiB }
    });
    const b = boundsFromPolicy(limited, DEFAULT_BOUND_SETTINGS, TWO_GPUS);
    expect(initialChoice({ request: {}, image: null }, limited, IMAGES, b).disk).toBe(2 * GiB);
    expect(initialChoice({ request: { disk: 3 * GiB } as never, image: null }, limited, IMAGES, b).disk).toBe(3 * GiB);
    expect(initialChoice({ request: { disk: '20G' } as never, image: null }, limited, IMAGES, b).disk).toBe(4 * GiB);
    expect(initialChoice(null, normalizePolicy({ max_disk: '1G' }), IMAGES, boundsFromPolicy(normalizePolicy({ max_disk: GiB }))).disk).toBe(GiB);
  });
  it('ignores a saved image that is no longer offered', () => {
    const c = initialChoice({ request: {}, image: 'berth/python:3.8' }, null, IMAGES, boundsFromPolicy(null));
    expect(c.image).toBe('berth/python:3.10');
    expect(c.cpu).toBe(1);
    expect(c.mem).toBe(GiB);
  });
});

describe('folders', () => {
  it('marks read-only folders', () => {
    expect(folderIsReadOnly({ name: 'course-materials', mode: 'ro' })).toBe(true);
    expect(folderIsReadOnly({ name: 'homework', mode: 'rw' })).toBe(false);
    expect(folderIsReadOnly({ name: 'x', read_only: true })).toBe(true);
  });
  it('names a folder by its reference when it has one', () => {
    expect(folderKey({ name: 'data', reference: '@class1/data' })).toBe('@class1/data');
    expect(folderKey({ name: 'data' })).toBe('data');
  });
});

describe('live usage', () => {
  it('computes cores in use from two samples of CPU time', () => {
    expect(cpuRate(undefined, { at: 1000, cpuSeconds: 5 })).toBeNull();
    expect(cpuRate({ at: 0, cpuSeconds: 1 }, { at: 2000, cpuSeconds: 2.5 })).toBeCloseTo(0.75);
    expect(cpuRate({ at: 0, cpuSeconds: 9 }, { at: 2000, cpuSeconds: 1 })).toBeNull(); // a restarted container
  });
  it('keeps meter fractions within 0…1', () => {
    expect(fraction(3, 2)).toBe(1);
    expect(fraction(256 * MiB, 512 * MiB)).toBe(0.5);
    expect(fraction(1, Infinity)).toBe(0);
    expect(fraction(undefined, 1)).toBe(0);
  });
  it('reads uptime', () => {
    const now = Date.parse('2026-11-22T10:00:00Z');
    expect(formatUptime('2026-11-22T09:57:00Z', now)).toBe('3 min');
    expect(formatUptime('2026-11-22T07:55:00Z', now)).toBe('2 h 5 min');
    expect(formatUptime('2026-11-22T09:59:30Z', now)).toBe('under a minute');
    expect(formatUptime(undefined, now)).toBe('');
  });
});
