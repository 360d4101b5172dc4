/**
 * What the sidebar says about fair sharing: a start waiting in the queue, the budgets with what is
 * left, the user's batch jobs. Pure functions of the API's answers and a translation bundle
 * (`trans.__('… %1 …', value)`, JupyterLab's translator), tested without a browser.
 */

import type { TranslationBundle } from '@jupyterlab/translation';

import { formatBytes, formatCpu, formatGpu, trimNumber } from './units';
import type { IBerthJob, IBudgetStatus, IQueuedStart } from './types';

/** What a waiting start asks for: `"1.5 CPU · 256 MiB"` (`· ¼ GPU` when it asks for a share). */
export function describeAsk(w: Pick<IQueuedStart, 'cpu' | 'mem' | 'gpu'>): string {
  const parts = [formatCpu(w.cpu)];
  if (w.mem) {
    parts.push(formatBytes(w.mem));
  }
  if (w.gpu) {
    parts.push(formatGpu(w.gpu));
  }
  return parts.join(' · ');
}

/** `"waiting for 0.5 CPU · 512 MiB; 2 ahead of you"`. */
export function describeWaiting(w: IQueuedStart, trans: TranslationBundle): string {
  if (w.ahead <= 0) {
    return trans.__('waiting for %1; next in line', describeAsk(w));
  }
  return trans._n('waiting for %2; %1 ahead of you', 'waiting for %2; %1 ahead of you', w.ahead, describeAsk(w));
}

/** The label of a waiting start: the job it starts, or the kernel (short id). */
export function waitingLabel(w: IQueuedStart, jobs: IBerthJob[], trans: TranslationBundle): string {
  const job = jobs.find(j => j.id === w.kernel_id);
  return job ? trans.__('Job %1', job.name) : trans.__('Kernel %1', w.kernel_id.slice(0, 8));
}

/** The budget kinds in the order shown, with their unit's words. */
export function budgetUnit(kind: string, trans: TranslationBundle): string {
  switch (kind) {
    case 'cpu_hours':
      return trans.__('CPU-hours');
    case 'mem_gib_hours':
      return trans.__('memory GiB-hours');
    case 'gpu_hours':
      return trans.__('GPU share-hours');
    default:
      return kind;
  }
}

export interface IBudgetLine {
  kind: string;
  /** `"18.5 of 20 CPU-hours left"` */
  text: string;
  /** left / limit, 0..1 */
  left: number;
}

/** A budget's heading: `"Your budget · autumn-2026"` or `"Group class-a · 2026-12"`. */
export function budgetTitle(b: IBudgetStatus, trans: TranslationBundle): string {
  return b.scope === 'group' ? trans.__('Group %1 · %2', b.name, b.period) : trans.__('Your budget · %1', b.period);
}

/** One line per budgeted kind, with what is left of it. */
export function budgetLines(b: IBudgetStatus, trans: TranslationBundle): IBudgetLine[] {
  return Object.keys(b.limits)
    .sort()
    .map(kind => {
      const limit = b.limits[kind];
      const left = Math.max(0, b.remaining[kind] ?? limit);
      return {
        kind,
        text: trans.__('%1 of %2 %3 left', trimNumber(left), trimNumber(limit), budgetUnit(kind, trans)),
        left: limit > 0 ? left / limit : 0
      };
    });
}

/** When a budget resets: `"resets 2027-01-01"` (the period's end, a UTC date). */
export function budgetResets(b: IBudgetStatus, trans: TranslationBundle): string {
  return trans.__('resets %1', (b.resets_at || '').slice(0, 10));
}

/** A job's state in a few words: `"queued; 1 ahead of it"`, `"running"`, `"failed: out of memory"`. */
export function describeJobStatus(job: IBerthJob, trans: TranslationBundle): string {
  switch (job.status) {
    case 'queued':
      return typeof job.ahead === 'number' && job.ahead > 0
        ? trans._n('queued; %1 ahead of it', 'queued; %1 ahead of it', job.ahead)
        : trans.__('queued; next in line');
    case 'running':
      return trans.__('running');
    case 'completed':
      return trans.__('completed');
    case 'cancelled':
      return trans.__('cancelled');
    case 'failed':
      return job.reason ? trans.__('failed: %1', job.reason) : trans.__('failed');
    default:
      return job.status;
  }
}

/** Jobs that can still be cancelled. */
export function jobIsActive(job: IBerthJob): boolean {
  return job.status === 'queued' || job.status === 'running';
}
