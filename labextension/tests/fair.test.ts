import type { TranslationBundle } from '@jupyterlab/translation';

import {
  budgetLines,
  budgetResets,
  budgetTitle,
  describeAsk,
  describeJobStatus,
  describeWaiting,
  jobIsActive,
  waitingLabel
} from '../src/fair';
import type { IBerthJob, IBudgetStatus, IQueuedStart } from '../src/types';
import { MiB } from '../src/units';

/**
 * The English bundle as JupyterLab's nullTranslator behaves (its package is ESM-only, which Jest here
 * does not load): `%1`… replaced by the arguments, `_n` picks singular or plural by the count (%1).
 */
const fill = (text: string, args: unknown[]) => text.replace(/%(\d+)/g, (m, i) => String(args[Number(i) - 1] ?? m));
const trans = {
  __: (msg: string, ...args: unknown[]) => fill(msg, args),
  _n: (one: string, many: string, n: number, ...args: unknown[]) => fill(n === 1 ? one : many, [n, ...args])
} as unknown as TranslationBundle;

const waiting = (ahead: number, extra: Partial<IQueuedStart> = {}): IQueuedStart => ({
  kernel_id: 'abcdef12-3456',
  ahead,
  cpu: 0.5,
  mem: 512 * MiB,
  gpu: 0,
  waiting_s: 3,
  deadline: '2026-12-07T20:00:00+00:00',
  ...extra
});

const job = (extra: Partial<IBerthJob>): IBerthJob => ({
  id: 'j1',
  name: 'train.ipynb',
  notebook: 'train.ipynb',
  image: 'berth/python:3.11',
  resources: { cpu: 0.5 },
  status: 'running',
  reason: null,
  message: null,
  created_at: '2026-12-07T18:00:00+00:00',
  ended_at: null,
  ...extra
});

describe('the start queue', () => {
  it('says what a waiting start asks for and how many wait ahead', () => {
    expect(describeWaiting(waiting(2), trans)).toBe('waiting for 0.5 CPU · 512 MiB; 2 ahead of you');
    expect(describeWaiting(waiting(1), trans)).toBe('waiting for 0.5 CPU · 512 MiB; 1 ahead of you');
    expect(describeWaiting(waiting(0), trans)).toBe('waiting for 0.5 CPU · 512 MiB; next in line');
    expect(describeAsk({ cpu: 1, mem: 0, gpu: 0.25 })).toBe('1 CPU · ¼ GPU');
  });

  it('names the job a waiting start belongs to, else the kernel', () => {
    expect(waitingLabel(waiting(0, { kernel_id: 'j1' }), [job({})], trans)).toBe('Job train.ipynb');
    expect(waitingLabel(waiting(0), [job({})], trans)).toBe('Kernel abcdef12');
  });
});

describe('budgets', () => {
  const budget: IBudgetStatus = {
    scope: 'user',
    name: 'alice',
    period: 'autumn-2026',
    resets_at: '2027-01-01T00:00:00+00:00',
    limits: { gpu_hours: 2, cpu_hours: 20 },
    used: { cpu_hours: 1.5, gpu_hours: 2.5 },
    remaining: { cpu_hours: 18.5, gpu_hours: -0.5 }
  };

  it('shows what is left of each kind, never below zero, and when it resets', () => {
    expect(budgetTitle(budget, trans)).toBe('Your budget · autumn-2026');
    expect(budgetTitle({ ...budget, scope: 'group', name: 'class-a' }, trans)).toBe('Group class-a · autumn-2026');
    expect(budgetLines(budget, trans)).toEqual([
      { kind: 'cpu_hours', text: '18.5 of 20 CPU-hours left', left: 18.5 / 20 },
      { kind: 'gpu_hours', text: '0 of 2 GPU share-hours left', left: 0 }
    ]);
    expect(budgetResets(budget, trans)).toBe('resets 2027-01-01');
  });
});

describe('jobs', () => {
  it('says where a job is and why it ended', () => {
    expect(describeJobStatus(job({ status: 'queued', ahead: 2 }), trans)).toBe('queued; 2 ahead of it');
    expect(describeJobStatus(job({ status: 'queued', ahead: 0 }), trans)).toBe('queued; next in line');
    expect(describeJobStatus(job({ status: 'failed', reason: 'out of memory' }), trans)).toBe('failed: out of memory');
    expect(describeJobStatus(job({ status: 'completed' }), trans)).toBe('completed');
    expect([job({ status: 'queued' }), job({}), job({ status: 'cancelled' })].map(jobIsActive)).toEqual([true, true, false]);
  });
});
