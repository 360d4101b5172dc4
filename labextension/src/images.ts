/**
 * Pure functions about the image catalog: which images a user can pick, how versions of
 * one environment group and sort, and what the sidebar shows of each. No JupyterLab
 * imports here (unit-tested in node, tests/images.test.ts).
 */

import { formatBytes } from './units';
import type { IImage } from './types';

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
  /** the language of its (first) kernel, as the catalog says: `python`, `R`, `bash` */
  language: string;
  versions: IImageVersion[];
}

/** Environments of one language, as the sidebar's Environment list groups them. */
export interface ILanguageGroup {
  /** what people read: `Python`, `R`, `Bash` */
  label: string;
  environments: IEnvironment[];
}

/** An image's language: the catalog's `language` (found inside the image when it was offered), else its label. */
export function imageLanguage(image: IImage): string {
  return String(image.language ?? image.label_language ?? 'python') || 'python';
}

function languageLabel(language: string): string {
  const known: Record<string, string> = { python: 'Python', r: 'R', bash: 'Bash', julia: 'Julia' };
  return known[language.toLowerCase()] ?? language.charAt(0).toUpperCase() + language.slice(1);
}

/** Group environments by language (Python first, then by name), each keeping its order. */
export function groupByLanguage(envs: IEnvironment[]): ILanguageGroup[] {
  const byLanguage = new Map<string, ILanguageGroup>();
  for (const env of envs) {
    const label = languageLabel(env.language);
    let group = byLanguage.get(label);
    if (!group) {
      group = { label, environments: [] };
      byLanguage.set(label, group);
    }
    group.environments.push(env);
  }
  return [...byLanguage.values()].sort((a, b) =>
    a.label === b.label ? 0 : a.label === 'Python' ? -1 : b.label === 'Python' ? 1 : a.label.localeCompare(b.label)
  );
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
    const version = String(image.version ?? image.label_version ?? tag);
    let env = byKey.get(key);
    if (!env) {
      env = { key, label: environmentLabel(image, version, key), language: imageLanguage(image), versions: [] };
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
  // the catalog's list (`frameworks`: found inside the image, or its label), else the raw label
  const frameworks = (Array.isArray(image.frameworks) ? image.frameworks.map(String) : String(image.label_frameworks ?? '').split(','))
    .map(s => s.trim())
    .filter(Boolean);
  const digest = String(image.digest ?? '');
  return {
    frameworks,
    size: image.size ? formatBytes(image.size) : '',
    gpu: image.gpu === true || String(image.label_gpu ?? 'false').toLowerCase() === 'true',
    digest: digest.replace(/^.*@/, '').slice(0, 19)
  };
}

