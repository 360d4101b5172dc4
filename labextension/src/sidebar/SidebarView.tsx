/**
 * The Berth sidebar: choose an environment, resources and folders; start a notebook or
 * a console, or give the current kernel new resources; save the choice as the default
 * profile; watch the running kernels and the GPUs. Server refusals are shown in the
 * server's own words.
 */

import * as React from 'react';

import { BerthActions, IKernelWidget } from '../actions';
import { applyEnvironment } from '../environment';
import {
  boundsFromPolicy,
  choiceResources,
  clampChoice,
  describeLimits,
  IBoundSettings,
  initialChoice
} from '../format';
import { BerthModel } from '../model';
import type { IBerthKernel, IChoice } from '../types';
import { EnvironmentSection, FoldersSection, ResourcesSection } from './ChoiceForm';
import { GpusSection, KernelsSection } from './LiveSections';
import { NotebookEnvironment } from './NotebookEnvironment';

export interface ISidebarViewProps {
  model: BerthModel;
  actions: BerthActions;
  boundSettings: IBoundSettings;
  /** the notebook or console in the main area, if any */
  current: IKernelWidget | null;
  kernelLabel: (kernel: IBerthKernel) => string;
}

type Message = { kind: 'error' | 'success'; text: string } | null;

export function SidebarView(props: ISidebarViewProps): JSX.Element {
  const { model, actions } = props;
  const [, setTick] = React.useState(0);
  React.useEffect(() => {
    const onChange = () => setTick(t => t + 1);
    model.changed.connect(onChange);
    return () => {
      model.changed.disconnect(onChange);
    };
  }, [model]);

  const bounds = boundsFromPolicy(model.policy, props.boundSettings, model.gpus);
  const [choice, setChoice] = React.useState<IChoice | null>(null);
  const [busy, setBusy] = React.useState<string | null>(null);
  const [message, setMessage] = React.useState<Message>(null);

  // The first choice comes from the saved profile (or the policy default) once loaded.
  React.useEffect(() => {
    if (choice === null && model.loaded) {
      setChoice(initialChoice(model.profile, model.policy, model.images, bounds));
    }
  });
  // Keep the choice inside the bounds when the policy changes.
  const effective = choice ? clampChoice(choice, bounds) : null;

  const currentKernelId = props.current?.sessionContext.session?.kernel?.id ?? null;
  const currentBerth = model.kernel(currentKernelId);

  const run = async (label: string, action: () => Promise<string | null>) => {
    setBusy(label);
    setMessage(null);
    try {
      const done = await action();
      if (done) {
        setMessage({ kind: 'success', text: done });
      }
    } catch (error) {
      setMessage({ kind: 'error', text: (error as Error).message || String(error) });
    } finally {
      setBusy(null);
    }
  };

  if (!model.loaded || !effective) {
    return (
      <div className="jp-BerthSidebar" data-testid="berth-sidebar">
        <Header {...props} onRefresh={() => void model.loadAll()} />
        <div className="jp-BerthEmpty" role="status">
          Loading…
        </div>
      </div>
    );
  }

  const summary = describeLimits(choiceResources(effective), effective.image);
  return (
    <div className="jp-BerthSidebar" data-testid="berth-sidebar">
      <Header {...props} onRefresh={() => void model.loadAll()} />
      {model.info?.runtime === 'process' && (
        <div className="jp-BerthNotice jp-mod-warn" role="status" data-testid="berth-process-mode">
          Process mode: no container engine here, so kernels run as plain local processes — limits are
          best-effort and there is no isolation between kernels.
        </div>
      )}
      {model.errors.info && (
        <div className="jp-BerthNotice jp-mod-error" role="alert">
          {model.errors.info}
        </div>
      )}
      <form
        className="jp-BerthForm"
        aria-label="Kernel choice"
        onSubmit={e => {
          e.preventDefault();
          void run('notebook', async () => {
            const { path } = await actions.startNotebook(effective);
            return `Started ${path} with ${summary}.`;
          });
        }}
      >
        <NotebookEnvironment
          api={model.api}
          current={props.current}
          onUse={(image, env) => setChoice(clampChoice(applyEnvironment(effective, image, env), bounds))}
        />
        <EnvironmentSection model={model} choice={effective} bounds={bounds} onChange={setChoice} />
        <ResourcesSection
          model={model}
          choice={effective}
          bounds={bounds}
          replacing={null}
          onChange={setChoice}
        />
        <FoldersSection model={model} choice={effective} bounds={bounds} onChange={setChoice} />
        <div className="jp-BerthActions" role="group" aria-label="Start">
          <div className="jp-BerthSummary" data-testid="berth-summary">
            {summary}
          </div>
          <button type="submit" className="jp-BerthButton jp-mod-accept" disabled={!!busy} data-testid="berth-start-notebook">
            {busy === 'notebook' ? 'Starting…' : 'Start notebook'}
          </button>
          <button
            type="button"
            className="jp-BerthButton"
            disabled={!!busy}
            onClick={() =>
              void run('console', async () => {
                await actions.startConsole(effective);
                return `Started a console with ${summary}.`;
              })
            }
            data-testid="berth-start-console"
          >
            {busy === 'console' ? 'Starting…' : 'Start console'}
          </button>
          <button
            type="button"
            className="jp-BerthButton"
            disabled={!!busy || !props.current}
            title={
              props.current
                ? `Restart the kernel of ${props.current.title.label} in a new container with these resources`
                : 'Open a notebook or console first'
            }
            onClick={() =>
              void run('change', async () => {
                const widget = props.current as IKernelWidget;
                const changed = await actions.changeResources(widget, effective, bounds);
                return changed ? `${widget.title.label} now runs with ${summary}.` : null;
              })
            }
            data-testid="berth-change-kernel"
          >
            {busy === 'change' ? 'Restarting…' : 'Apply to current kernel'}
          </button>
          <button
            type="button"
            className="jp-BerthButton"
            disabled={!!busy}
            title="Kernels started without parameters (for example from VS Code) get these"
            onClick={() =>
              void run('save', async () => {
                await actions.saveDefault(effective);
                return `Saved as your default: ${summary}.`;
              })
            }
            data-testid="berth-save-default"
          >
            {busy === 'save' ? 'Saving…' : 'Save as default'}
          </button>
        </div>
      </form>
      <div
        className={`jp-BerthMessage${message ? ` jp-mod-${message.kind}` : ''}`}
        role={message?.kind === 'error' ? 'alert' : 'status'}
        aria-live="polite"
        data-testid="berth-message"
      >
        {message?.text ?? ''}
      </div>
      {props.current && (
        <div className="jp-BerthCurrent" data-testid="berth-current">
          Current: {props.current.title.label}
          {currentBerth ? ` · ${describeLimits(currentBerth.resources, currentBerth.image)}` : ' · not a Berth kernel'}
        </div>
      )}
      <KernelsSection
        model={model}
        kernelLabel={props.kernelLabel}
        currentKernelId={currentKernelId}
        onStop={(k, label) =>
          void run('stop', async () => {
            const stopped = await actions.stopKernel(k.kernel_id, label);
            return stopped ? `Stopped ${label}.` : null;
          })
        }
      />
      <GpusSection model={model} />
    </div>
  );
}

function Header(props: ISidebarViewProps & { onRefresh: () => void }): JSX.Element {
  const info = props.model.info;
  return (
    <div className="jp-BerthHeader">
      <h2 className="jp-BerthHeader-title">Berth</h2>
      <span className="jp-BerthHeader-who">
        {info ? `${info.user}${info.mode === 'hub' ? ' · hub' : ''}` : ''}
      </span>
      <button
        type="button"
        className="jp-BerthButton jp-mod-small"
        onClick={props.onRefresh}
        aria-label="Refresh"
        title="Reload images, folders, policy and kernels"
        data-testid="berth-refresh"
      >
        ↻
      </button>
    </div>
  );
}
