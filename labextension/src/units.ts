/**
 * Sizes and numbers as people read them (binary units, as Docker reads them). Pure
 * functions, unit-tested in node.
 */

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
