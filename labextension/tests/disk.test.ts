import type { TranslationBundle } from '@jupyterlab/translation';

import {
  clampDerivedDisk,
  DEFAULT_DISK,
  describeEvery,
  diskLabel,
  diskOffer,
  diskProblem,
  MIN_DISK,
  withDiskOffer
} from '../src/disk';
import type { IChoice, IInfo } from '../src/types';
import { GiB, MiB } from '../src/units';

/** The English bundle as JupyterLab's nullTranslator behaves (its package is ESM-only; see fair.test.ts). */
const fill = (text: string, args: unknown[]) => text.replace(/%(\d+)/g, (m, i) => String(args[Number(i) - 1] ?? m));
const trans = { __: (msg: string, ...args: unknown[]) => fill(msg, args) } as unknown as TranslationBundle;

const KINDS = ['cpu', 'mem', 'pids', 'shm', 'gpu', 'disk'].map(name => ({ name }));
const info = (disk: IInfo['disk'], resources = KINDS): IInfo => ({ mode: 'standalone', user: 'ada', disk, resources });

describe('diskOffer', () => {
  it('offers the field where the engine enforces the limit', () => {
    const offer = diskOffer(info({ mode: 'enforced', why: 'overlay2 on xfs with pquota', interval_s: 60, grace_s: 60 }), trans);
    expect(offer).toEqual({ offered: true, mode: 'enforced', note: 'Enforced by the engine: a write over the limit fails in the kernel.', warn: false });
  });
  it('offers it where Berth measures, saying how often and what happens over it', () => {
    const offer = diskOffer(info({ mode: 'measured', why: 'overlay2 on extfs', interval_s: 60, grace_s: 60 }), trans);
    expect(offer.offered).toBe(true);
    expect(offer.note).toBe(
      'Not enforced by the engine: checked every minute; a kernel over it is warned, then stopped 1 min later unless it frees space.'
    );
    expect(diskOffer(info({ mode: 'measured', interval_s: 90, grace_s: 0 }), trans).note).toBe(
      'Not enforced by the engine: checked every 90 s; a kernel over it is stopped.'
    );
  });
  it('warns where Berth would measure but samples no usage, so nothing checks', () => {
    const offer = diskOffer(info({ mode: 'measured', interval_s: null, grace_s: 60 }), trans);
    expect(offer).toMatchObject({ offered: true, warn: true });
    expect(offer.note).toMatch(/nothing checks the limit/);
  });
  it('offers no field where the server bounds no disk, and says why', () => {
    const offer = diskOffer(info({ mode: 'none', why: 'this runtime bounds no disk use' }), trans);
    expect(offer).toEqual({ offered: false, mode: 'none', note: 'Not limited on this server: this runtime bounds no disk use.', warn: false });
  });
  it('offers none without the info, or from a server without the disk resource (it would refuse the field)', () => {
    expect(diskOffer(null, trans)).toEqual({
      offered: false,
      mode: 'unknown',
      note: 'The server did not say whether it bounds disk use.',
      warn: true
    });
    expect(diskOffer({ mode: 'standalone', user: 'ada' }, trans).note).toBe('This server sets no disk limits.');
    expect(diskOffer({ mode: 'standalone', user: 'ada' }, trans).offered).toBe(false);
    expect(diskOffer(info({ mode: 'measured', interval_s: 60 }, KINDS.slice(0, 5)), trans).offered).toBe(false);
  });
  it('keeps the field, with a caveat, while the engine does not say', () => {
    const offer = diskOffer(info({ mode: 'unknown', why: 'the engine does not answer' }), trans);
    expect(offer).toEqual({ offered: true, mode: 'unknown', note: 'How the limit holds is not known yet: the engine does not answer.', warn: true });
  });
  it('reads intervals as people say them', () => {
    expect([60, 120, 90, 15, 0.5].map(s => describeEvery(s, trans))).toEqual(['minute', '2 min', '90 s', '15 s', '0.5 s']);
  });
});

describe('diskProblem', () => {
  it('says what is wrong with a typed size: too little, or over max_disk', () => {
    expect(diskProblem(2 * GiB, 4 * GiB, true, trans)).toBeNull();
    expect(diskProblem(4 * GiB, 4 * GiB, true, trans)).toBeNull();
    expect(diskProblem(8 * GiB, 4 * GiB, true, trans)).toBe(
      '8 GiB of disk is more than your policy allows per kernel (at most 4 GiB, max_disk): the server will refuse it.'
    );
    expect(diskProblem(32 * MiB, 4 * GiB, true, trans)).toBe('32 MiB of disk is too little: ask for at least 64 MiB.');
    expect(diskProblem(500 * GiB, 100 * GiB, false, trans)).toBeNull(); // no per-kernel limit: the slider's end is not one
  });
});

describe('the disk in a choice', () => {
  const choice: IChoice = { image: null, cpu: 1, mem: GiB, gpu: 0, folders: [] };
  it('has a size where the field is offered, none where it is not', () => {
    expect(withDiskOffer(choice, true, DEFAULT_DISK).disk).toBe(10 * GiB);
    expect(withDiskOffer({ ...choice, disk: 2 * GiB }, true, DEFAULT_DISK).disk).toBe(2 * GiB);
    expect('disk' in withDiskOffer({ ...choice, disk: 2 * GiB }, false, DEFAULT_DISK)).toBe(false);
    expect(withDiskOffer(choice, false, DEFAULT_DISK)).toBe(choice);
  });
  it('keeps a derived size (preset, profile, notebook) within max_disk and the least size', () => {
    expect(clampDerivedDisk(10 * GiB, { max: 4 * GiB, fromPolicy: true })).toBe(4 * GiB);
    expect(clampDerivedDisk(10 * GiB, { max: 4 * GiB, fromPolicy: false })).toBe(10 * GiB);
    expect(clampDerivedDisk(MiB, { max: 4 * GiB, fromPolicy: true })).toBe(MIN_DISK);
  });
  it('reads as a part of the limits', () => {
    expect(diskLabel(2 * GiB, trans)).toEqual(['2 GiB disk']);
    expect(diskLabel(1.5 * GiB, trans)).toEqual(['1.5 GiB disk']);
    expect(diskLabel(undefined, trans)).toEqual([]);
  });
});
