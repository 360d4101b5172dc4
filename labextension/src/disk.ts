/**
 * The sidebar's disk field: whether it is offered (how the server holds kernels to their disk
 * limit, `GET berth/api/info` → `disk`), the value a kernel starts with, what is wrong with a typed
 * value, and how a limit reads. The bounds (`max_disk` per kernel, what is left of `total_disk`) are
 * the policy's, as for memory (format.ts `boundsFromPolicy`). Pure functions of the API's answers
 * and a translation bundle, unit-tested in node (tests/disk.test.ts). Modes: docs/disk-limits.md.
 */

import type { TranslationBundle } from '@jupyterlab/translation';

import { formatBytes, GiB, MiB, trimNumber } from './units';
import type { IBound } from './format';
import type { IChoice, IInfo } from './types';

/** The least disk a kernel may ask for (the server's `MIN_DISK`). */
export const MIN_DISK = 64 * MiB;
/** What a kernel gets when nothing names a disk size (the server's default for the kind). */
export const DEFAULT_DISK = 10 * GiB;

/** What the sidebar offers for disk, and the line that says how the limit holds (or why there is none). */
export interface IDiskOffer {
  /** the field is shown and the request names a disk size */
  offered: boolean;
  /** "enforced", "measured", "none" or "unknown" */
  mode: string;
  note: string;
  /** the note is a caveat (the limit is not checked) */
  warn: boolean;
}

/** `60` → "minute", `90` → "90 s", `120` → "2 min": for "every %1". */
export function describeEvery(seconds: number, trans: TranslationBundle): string {
  if (seconds === 60) {
    return trans.__('minute');
  }
  if (seconds >= 120 && seconds % 60 === 0) {
    return trans.__('%1 min', seconds / 60);
  }
  return trans.__('%1 s', trimNumber(seconds, 1));
}

/** `60` → "1 min", `90` → "90 s". */
function describeSeconds(seconds: number, trans: TranslationBundle): string {
  return seconds >= 60 && seconds % 60 === 0 ? trans.__('%1 min', seconds / 60) : trans.__('%1 s', trimNumber(seconds, 1));
}

/**
 * Whether the disk field is offered, from the server's info: yes when the server bounds disk
 * ("enforced" by the engine, "measured" by Berth) or could not tell yet ("unknown": the engine did
 * not answer); no when it bounds none ("none": process kernels, Swarm tasks), when the info did not
 * load, or when the server has no `disk` resource (an older server would refuse the field).
 */
export function diskOffer(info: IInfo | null | undefined, trans: TranslationBundle): IDiskOffer {
  const kinds = info?.resources;
  const known = !!info?.disk && (!Array.isArray(kinds) || kinds.some(k => k.name === 'disk'));
  if (!info) {
    return { offered: false, mode: 'unknown', note: trans.__('The server did not say whether it bounds disk use.'), warn: true };
  }
  if (!known) {
    return { offered: false, mode: 'none', note: trans.__('This server sets no disk limits.'), warn: false };
  }
  const disk = info.disk!;
  const why = disk.why ? String(disk.why) : '';
  switch (disk.mode) {
    case 'none':
      return {
        offered: false,
        mode: 'none',
        note: why ? trans.__('Not limited on this server: %1.', why) : trans.__('Not limited on this server.'),
        warn: false
      };
    case 'enforced':
      return {
        offered: true,
        mode: 'enforced',
        note: trans.__('Enforced by the engine: a write over the limit fails in the kernel.'),
        warn: false
      };
    case 'measured': {
      const every = disk.interval_s;
      if (typeof every !== 'number' || !(every > 0)) {
        return {
          offered: true,
          mode: 'measured',
          note: trans.__(
            'Not enforced by the engine, and this server samples no usage, so nothing checks the limit (it still counts against your total).'
          ),
          warn: true
        };
      }
      const grace = typeof disk.grace_s === 'number' && disk.grace_s > 0 ? disk.grace_s : 0;
      return {
        offered: true,
        mode: 'measured',
        note: grace
          ? trans.__(
              'Not enforced by the engine: checked every %1; a kernel over it is warned, then stopped %2 later unless it frees space.',
              describeEvery(every, trans),
              describeSeconds(grace, trans)
            )
          : trans.__('Not enforced by the engine: checked every %1; a kernel over it is stopped.', describeEvery(every, trans)),
        warn: false
      };
    }
    default:
      return {
        offered: true,
        mode: 'unknown',
        note: why
          ? trans.__('How the limit holds is not known yet: %1.', why)
          : trans.__('How the limit holds is not known yet.'),
        warn: true
      };
  }
}

/** What is wrong with a disk size for one kernel (`null` when nothing is): under the minimum, or over the policy's `max_disk`. */
export function diskProblem(disk: number, max: number, maxFromPolicy: boolean, trans: TranslationBundle): string | null {
  if (!Number.isFinite(disk) || disk < MIN_DISK) {
    return trans.__('%1 of disk is too little: ask for at least %2.', formatBytes(disk), formatBytes(MIN_DISK));
  }
  if (maxFromPolicy && disk > max) {
    return trans.__(
      '%1 of disk is more than your policy allows per kernel (at most %2, max_disk): the server will refuse it.',
      formatBytes(disk),
      formatBytes(max)
    );
  }
  return null;
}

/** The disk part of a kernel's limits, `["2 GiB disk"]`, or nothing (no size, or not offered). */
export function diskLabel(disk: number | undefined, trans: TranslationBundle): string[] {
  return typeof disk === 'number' && Number.isFinite(disk) ? [trans.__('%1 disk', formatBytes(disk))] : [];
}

/**
 * A disk size that comes from a preset, a profile, the policy's default or a saved notebook (not typed):
 * kept within the least size and the policy's `max_disk` (none: not bounded), as the server clamps such values.
 */
export function clampDerivedDisk(disk: number, bound: Pick<IBound, 'max' | 'fromPolicy'>): number {
  const max = bound.fromPolicy ? Math.max(bound.max, MIN_DISK) : Infinity;
  return Math.round(Math.min(Math.max(disk, MIN_DISK), max));
}

/** The choice as the form uses it: with a disk size when the field is offered (`fallback` when it has none yet), without one when not. */
export function withDiskOffer(choice: IChoice, offered: boolean, fallback: number): IChoice {
  if (!offered) {
    if (choice.disk === undefined) {
      return choice;
    }
    const without = { ...choice };
    delete without.disk;
    return without;
  }
  return choice.disk === undefined ? { ...choice, disk: fallback } : choice;
}
