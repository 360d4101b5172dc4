/**
 * Fair sharing in the sidebar: the user's starts waiting in the start queue (each with its place
 * and a Cancel), the budgets with what is left, and the user's batch jobs (status, Cancel). All
 * from the service's REST routes (`berth/api/queue`, `budget`, `jobs`), forwarded in hub mode.
 */

import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import {
  budgetLines,
  budgetResets,
  budgetTitle,
  describeJobStatus,
  describeWaiting,
  jobIsActive,
  waitingLabel
} from '../fair';
import { describeLimits } from '../format';
import { BerthModel } from '../model';
import type { IBerthJob, IQueuedStart } from '../types';
import { Meter, Section } from './controls';

export interface IFairSectionProps {
  model: BerthModel;
  trans: TranslationBundle;
}

export function QueueSection(props: IFairSectionProps & { onCancel: (w: IQueuedStart, label: string) => void }): JSX.Element | null {
  const { model, trans } = props;
  if (model.queue.length === 0 && !model.errors.queue) {
    return null; // nothing waits: no section
  }
  return (
    <Section title={trans.__('Waiting for room (%1)', model.queue.length)} testId="berth-queue">
      {model.errors.queue && (
        <div className="jp-BerthNotice jp-mod-error" role="alert">
          {model.errors.queue}
        </div>
      )}
      <ul className="jp-BerthQueue">
        {model.queue.map(w => {
          const label = waitingLabel(w, model.jobs, trans);
          return (
            <li key={w.kernel_id} className="jp-BerthQueue-item" data-testid="berth-queued-start" data-kernel-id={w.kernel_id}>
              <div className="jp-BerthKernel-header">
                <span className="jp-BerthKernel-name" title={w.kernel_id}>
                  {label}
                </span>
                <button
                  className="jp-BerthButton jp-mod-small jp-mod-warn"
                  onClick={() => props.onCancel(w, label)}
                  aria-label={trans.__('Cancel the waiting start of %1', label)}
                  data-testid="berth-queued-cancel"
                >
                  {trans.__('Cancel')}
                </button>
              </div>
              <div className="jp-BerthQueue-place" data-testid="berth-queued-place">
                {describeWaiting(w, trans)}
              </div>
            </li>
          );
        })}
      </ul>
    </Section>
  );
}

export function BudgetSection(props: IFairSectionProps): JSX.Element | null {
  const { model, trans } = props;
  const budgets = model.budget?.budgets ?? [];
  if (budgets.length === 0 && !model.errors.budget) {
    return null; // no budget applies to this user
  }
  return (
    <Section title={trans.__('Budget')} testId="berth-budget">
      {model.errors.budget && (
        <div className="jp-BerthNotice jp-mod-error" role="alert">
          {model.errors.budget}
        </div>
      )}
      {budgets.map(b => (
        <div key={`${b.scope}:${b.name}:${b.period}`} className="jp-BerthBudget" data-testid="berth-budget-item">
          <div className="jp-BerthBudget-title">
            {budgetTitle(b, trans)} · {budgetResets(b, trans)}
          </div>
          {budgetLines(b, trans).map(line => (
            <Meter
              key={line.kind}
              label={trans.__('Left')}
              remaining
              value={line.left}
              text={line.text}
              testId="berth-budget-left"
            />
          ))}
        </div>
      ))}
      {(model.budget?.notices ?? []).slice(-3).map(n => (
        <div key={`${n.allocation_id}:${n.action}:${n.at}`} className="jp-BerthNotice jp-mod-warn" role="status">
          {n.message}
        </div>
      ))}
    </Section>
  );
}

export function JobsSection(props: IFairSectionProps & { onCancel: (job: IBerthJob) => void }): JSX.Element {
  const { model, trans } = props;
  return (
    <Section title={trans.__('Jobs (%1)', model.jobs.length)} testId="berth-jobs">
      {model.errors.jobs && (
        <div className="jp-BerthNotice jp-mod-error" role="alert">
          {model.errors.jobs}
        </div>
      )}
      {model.jobs.length === 0 && !model.errors.jobs && (
        <div className="jp-BerthEmpty">{trans.__('No batch job yet. Run one with "berth run" or Create Job.')}</div>
      )}
      <ul className="jp-BerthJobs">
        {model.jobs.slice(0, 20).map(job => (
          <li key={job.id} className={`jp-BerthJob jp-mod-${job.status}`} data-testid="berth-job" data-job-id={job.id}>
            <div className="jp-BerthKernel-header">
              <span className="jp-BerthKernel-name" title={job.id}>
                {job.name}
              </span>
              {jobIsActive(job) && (
                <button
                  className="jp-BerthButton jp-mod-small jp-mod-warn"
                  onClick={() => props.onCancel(job)}
                  aria-label={trans.__('Cancel job %1', job.name)}
                  data-testid="berth-job-cancel"
                >
                  {trans.__('Cancel')}
                </button>
              )}
            </div>
            <div className="jp-BerthJob-status" data-testid="berth-job-status" data-status={job.status}>
              {describeJobStatus(job, trans)} · {describeLimits(job.resources, job.image)}
            </div>
            {job.message && job.status !== 'running' && job.status !== 'queued' && (
              <div className="jp-BerthJob-message">{job.message}</div>
            )}
          </li>
        ))}
      </ul>
    </Section>
  );
}
