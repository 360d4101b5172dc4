/**
 * A notebook's stored environment (`metadata.berth.environment`, written by the server when
 * the notebook is saved from a Berth kernel) and how the sidebar offers it again. Pure
 * functions, unit-tested in node (tests/environment.test.ts).
 */

import type { IChoice, INotebookEnvironment, IResolvedEnvironment } from './types';

/** The environment in a notebook's `berth` metadata, or `null` when there is none (or it is malformed). */
export function environmentOf(berthMetadata: unknown): INotebookEnvironment | null {
  const env = (berthMetadata as { environment?: unknown } | null | undefined)?.environment as Record<string, unknown> | undefined;
  if (!env || typeof env !== 'object' || typeof env.image !== 'string' || !env.image) {
    return null;
  }
  const resources = env.resources && typeof env.resources === 'object' ? (env.resources as INotebookEnvironment['resources']) : undefined;
  return {
    image: env.image,
    digest: typeof env.digest === 'string' ? env.digest : null,
    display_name: typeof env.display_name === 'string' ? env.display_name : undefined,
    resources
  };
}

/** The image the sidebar offers for a resolved environment: exactly it when available, else the nearest one. */
export function offeredImage(answer: IResolvedEnvironment): string | null {
  if (answer.status === 'available') {
    return answer.image;
  }
  return answer.nearest?.image ?? null;
}

/** The sidebar's choice with a notebook's environment applied (image and, where recorded, resources; the disk
 * size only where the choice has one, that is where the server bounds disk). */
export function applyEnvironment(choice: IChoice, image: string, env: INotebookEnvironment): IChoice {
  const r = env.resources ?? {};
  return {
    ...choice,
    image,
    cpu: typeof r.cpu === 'number' && r.cpu > 0 ? r.cpu : choice.cpu,
    mem: typeof r.mem === 'number' && r.mem > 0 ? r.mem : choice.mem,
    gpu: typeof r.gpu === 'number' && r.gpu >= 0 ? r.gpu : choice.gpu,
    ...(choice.disk !== undefined && typeof r.disk === 'number' && r.disk > 0 ? { disk: r.disk } : {})
  };
}

/** A short digest for people: `sha256:0c220c57603f`. */
export function shortDigest(digest: string | null | undefined): string {
  return digest ? digest.replace(/^.*@/, '').slice(0, 19) : '';
}
