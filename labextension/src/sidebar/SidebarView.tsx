/**
 * The Berth sidebar: choose an environment, resources and folders; start a notebook or
 * a console, or give the current kernel new resources; save the choice as the default
 * profile; watch the running kernels and the GPUs. Server refusals are shown in the
 * server's own words.
 */

import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { BerthActions, IKernelWidget } from '../actions';
import { clampDerivedDisk, DEFAULT_DISK, diskLabel, diskOffer, withDiskOffer } from '../disk';
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
import { BudgetSection, JobsSection, QueueSection } from './FairSections';
import { GpusSection, KernelsSection } from './LiveSections';
import { NotebookEnvironment } from './NotebookEnvironment';

export interface ISidebarViewProps {
  model: BerthModel;
  actions: BerthActions;
  boundSettings: IBoundSettings;
  /** the notebook or console in the main area, if any */
  current: IKernelWidget | null;
  kernelLabel: (kernel: IBerthKernel) => string;
  /** the sidebar's strings, through JupyterLab's translator (domain `jupyter-berth`) */
  trans: TranslationBundle;
}

type Message = { kind: 'error' | 'success'; text: string } | null;

export function SidebarView(props: ISidebarViewProps): JSX.Element {
  const { model, actions, trans } = props;
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
  // Keep the choice inside the bounds when the policy changes; a disk size only where the server bounds disk.
  const disk = diskOffer(model.info, trans);
  const diskFallback = React.useMemo(
    () => initialChoice(model.profile, model.policy, model.images, bounds).disk ?? DEFAULT_DISK,
    [model.loaded, disk.offered]
  );
  const effective = choice ? withDiskOffer(clampChoice(choice, bounds), disk.offered, diskFallback) : null;

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
          {trans.__('Loading…')}
        </div>
      </div>
    );
  }

  const summary = describeLimits(choiceResources(effective), effective.image, diskLabel(effective.disk, trans));
  return (
    <div className="jp-BerthSidebar" data-testid="berth-sidebar">
      <Header {...props} onRefresh={() => void model.loadAll()} />
      {model.info?.runtime === 'process' && (
        <div className="jp-BerthNotice jp-mod-warn" role="status" data-testid="berth-process-mode">
          {trans.__(
            'Process mode: no container engine here, so kernels run as plain local processes — limits are best-effort and there is no isolation between kernels.'
          )}
        </div>
      )}
      {model.errors.info && (
        <div className="jp-BerthNotice jp-mod-error" role="alert">
          {model.errors.info}
        </div>
      )}
      <form
        className="jp-BerthForm"
        aria-label={trans.__('Kernel choice')}
        // The browser's own checks of the number fields (a size off the slider's steps, a disk size over
        // max_disk) would block "Start notebook" alone, in a bubble; the fields and the server say what is wrong.
        noValidate
        onSubmit={e => {
          e.preventDefault();
          void run('notebook', async () => {
            const { path } = await actions.startNotebook(effective);
            return trans.__('Started %1 with %2.', path, summary);
          });
        }}
      >
        <NotebookEnvironment
          api={model.api}
          current={props.current}
          onUse={(image, env) => {
            const next = clampChoice(applyEnvironment(effective, image, env), bounds);
            setChoice(next.disk === undefined ? next : { ...next, disk: clampDerivedDisk(next.disk, bounds.disk) });
          }}
          trans={trans}
        />
        <EnvironmentSection model={model} choice={effective} bounds={bounds} onChange={setChoice} trans={trans} />
        <ResourcesSection
          model={model}
          choice={effective}
          bounds={bounds}
          replacing={null}
          onChange={setChoice}
          trans={trans}
          disk={disk}
        />
        <FoldersSection model={model} choice={effective} bounds={bounds} onChange={setChoice} trans={trans} />
        <div className="jp-BerthActions" role="group" aria-label={trans.__('Start')}>
          <div className="jp-BerthSummary" data-testid="berth-summary">
            {summary}
          </div>
          <button type="submit" className="jp-BerthButton jp-mod-accept" disabled={!!busy} data-testid="berth-start-notebook">
            {busy === 'notebook' ? trans.__('Starting…') : trans.__('Start notebook')}
          </button>
          <button
            type="button"
            className="jp-BerthButton"
            disabled={!!busy}
            onClick={() =>
              void run('console', async () => {
                await actions.startConsole(effective);
                return trans.__('Started a console with %1.', summary);
              })
            }
            data-testid="berth-start-console"
          >
            {busy === 'console' ? trans.__('Starting…') : trans.__('Start console')}
          </button>
          <button
            type="button"
            className="jp-BerthButton"
            disabled={!!busy || !props.current}
            title={
              props.current
                ? trans.__('Restart the kernel of %1 in a new container with these resources', props.current.title.label)
                : trans.__('Open a notebook or console first')
            }
            onClick={() =>
              void run('change', async () => {
                const widget = props.current as IKernelWidget;
                const changed = await actions.changeResources(widget, effective, bounds);
                return changed ? trans.__('%1 now runs with %2.', widget.title.label, summary) : null;
              })
            }
            data-testid="berth-change-kernel"
          >
            {busy === 'change' ? trans.__('Restarting…') : trans.__('Apply to current kernel')}
          </button>
          <button
            type="button"
            className="jp-BerthButton"
            disabled={!!busy}
            title={trans.__('Kernels started without parameters (for example from VS Code) get these')}
            onClick={() =>
              void run('save', async () => {
                await actions.saveDefault(effective);
                return trans.__('Saved as your default: %1.', summary);
              })
            }
            data-testid="berth-save-default"
          >
            {busy === 'save' ? trans.__('Saving…') : trans.__('Save as default')}
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
          {trans.__('Current: %1', props.current.title.label)}
          {currentBerth
            ? ` · ${describeLimits(currentBerth.resources, currentBerth.image, disk.offered ? diskLabel(currentBerth.resources.disk, trans) : [])}`
            : ` · ${trans.__('not a Berth kernel')}`}
        </div>
      )}
      <KernelsSection
        model={model}
        kernelLabel={props.kernelLabel}
        currentKernelId={currentKernelId}
        showDisk={disk.offered}
        trans={trans}
        onStop={(k, label) =>
          void run('stop', async () => {
            const stopped = await actions.stopKernel(k.kernel_id, label);
            return stopped ? trans.__('Stopped %1.', label) : null;
          })
        }
      />
      <QueueSection
        model={model}
        trans={trans}
        onCancel={(w, label) =>
          void run('cancel-start', async () => {
            await actions.cancelQueuedStart(w.kernel_id);
            return trans.__('Cancelled the waiting start of %1.', label);
          })
        }
      />
      <BudgetSection model={model} trans={trans} />
      <JobsSection
        model={model}
        trans={trans}
        onCancel={job =>
          void run('cancel-job', async () => {
            const cancelled = await actions.cancelJob(job);
            return cancelled ? trans.__('Cancelled job %1.', job.name) : null;
          })
        }
      />
      <GpusSection model={model} trans={trans} />
    </div>
  );
}

function Header(props: ISidebarViewProps & { onRefresh: () => void }): JSX.Element {
  const info = props.model.info;
  const trans = props.trans;
  return (
    <div className="jp-BerthHeader">
      <h2 className="jp-BerthHeader-title">Berth</h2>
      <span className="jp-BerthHeader-who">
        {info ? `${info.user}${info.mode === 'hub' ? ` · ${trans.__('hub')}` : ''}` : ''}
      </span>
      <button
        type="button"
        className="jp-BerthButton jp-mod-small"
        onClick={props.onRefresh}
        aria-label={trans.__('Refresh')}
        title={trans.__('Reload images, folders, policy and kernels')}
        data-testid="berth-refresh"
      >
        ↻
      </button>
    </div>
  );
}
