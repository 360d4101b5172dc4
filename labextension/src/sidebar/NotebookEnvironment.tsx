/**
 * "This notebook was saved in python:3.11 (sha256:…) — Use this environment": when the
 * current notebook carries the environment it ran in, the sidebar asks the server what that
 * environment gets here and offers exactly it again, or says it was retired or replaced and
 * offers the nearest version.
 */

import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import type { IKernelWidget } from '../actions';
import type { BerthAPI } from '../api';
import { environmentOf, offeredImage, shortDigest } from '../environment';
import { describeLimits } from '../format';
import type { INotebookEnvironment, IResolvedEnvironment } from '../types';

interface INotebookLike {
  context?: { ready?: Promise<void>; path?: string; model?: { getMetadata?: (key: string) => unknown } };
}

export interface INotebookEnvironmentProps {
  api: BerthAPI;
  current: IKernelWidget | null;
  onUse: (image: string, env: INotebookEnvironment) => void;
  trans: TranslationBundle;
}

interface IState {
  path: string;
  env: INotebookEnvironment;
  answer: IResolvedEnvironment | null;
  error: string | null;
}

export function NotebookEnvironment(props: INotebookEnvironmentProps): JSX.Element | null {
  const { api, current, trans } = props;
  const [state, setState] = React.useState<IState | null>(null);

  React.useEffect(() => {
    let cancelled = false;
    setState(null);
    const context = (current as unknown as INotebookLike | null)?.context;
    if (!context?.model?.getMetadata) {
      return;
    }
    void (async () => {
      await context.ready;
      const env = environmentOf(context.model?.getMetadata?.('berth'));
      if (!env || cancelled) {
        return;
      }
      const path = context.path ?? '';
      try {
        const answer = await api.resolveEnvironment(env);
        if (!cancelled) {
          setState({ path, env, answer, error: null });
        }
      } catch (error) {
        if (!cancelled) {
          setState({ path, env, answer: null, error: (error as Error).message });
        }
      }
    })();
    return () => {
      cancelled = true;
    };
  }, [api, current]);

  if (!state) {
    return null;
  }
  const { env, answer } = state;
  const name = env.display_name || env.image;
  const saved = `${name}${env.digest ? ` (${shortDigest(env.digest)})` : ''}${env.resources ? ` · ${describeLimits(env.resources)}` : ''}`;
  const image = answer ? offeredImage(answer) : null;
  const available = answer?.status === 'available';
  return (
    <div
      className={`jp-BerthNotice jp-BerthEnvironment ${available ? 'jp-mod-info' : 'jp-mod-warn'}`}
      role="status"
      data-testid="berth-notebook-environment"
      data-status={answer?.status ?? 'error'}
    >
      <div>{trans.__('This notebook was saved in %1.', saved)}</div>
      {answer && !available && <div data-testid="berth-notebook-environment-message">{answer.message}.</div>}
      {state.error && <div>{trans.__('Could not check it: %1', state.error)}</div>}
      {image && (
        <button
          type="button"
          className="jp-BerthButton jp-mod-small"
          onClick={() => props.onUse(image, env)}
          data-testid="berth-use-notebook-environment"
        >
          {available ? trans.__('Use this environment') : trans.__('Use %1', image)}
        </button>
      )}
    </div>
  );
}
