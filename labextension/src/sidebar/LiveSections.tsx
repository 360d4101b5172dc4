/**
 * The live part of the sidebar: the user's running kernels with CPU, memory and GPU use
 * against their limits, and their disk limit where the server bounds disk (each with a Stop
 * button), and the GPU devices with their free share.
 */

import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import {
  describeLimits,
  describeMemoryUse,
  formatBytes,
  formatCpu,
  formatGpu,
  formatUptime,
  fraction,
  imageShortName,
  trimNumber
} from '../format';
import { diskLabel } from '../disk';
import { describeDevice, describeGpuUse, gpuMemoryCap } from '../gpu';
import { BerthModel } from '../model';
import type { IBerthKernel } from '../types';
import { Meter, Section } from './controls';

export interface IKernelsSectionProps {
  model: BerthModel;
  /** the document a kernel serves (from JupyterLab's sessions), if any */
  kernelLabel: (kernel: IBerthKernel) => string;
  currentKernelId: string | null;
  onStop: (kernel: IBerthKernel, label: string) => void;
  /** list each kernel's disk limit (the server bounds disk: disk.ts `diskOffer`) */
  showDisk?: boolean;
  trans: TranslationBundle;
}

export function KernelsSection(props: IKernelsSectionProps): JSX.Element {
  const { model, trans } = props;
  return (
    <Section title={trans.__('Running kernels (%1)', model.kernels.length)} testId="berth-kernels">
      {model.errors.kernels && (
        <div className="jp-BerthNotice jp-mod-error" role="alert">
          {model.errors.kernels}
        </div>
      )}
      {model.kernels.length === 0 && !model.errors.kernels && <div className="jp-BerthEmpty">{trans.__('No Berth kernel is running.')}</div>}
      <ul className="jp-BerthKernels">
        {model.kernels.map(k => {
          const label = props.kernelLabel(k);
          const cores = model.cpuInUse.get(k.kernel_id);
          const gpuShare = k.resources.gpu ?? 0;
          return (
            <li
              key={k.kernel_id}
              className={`jp-BerthKernel${k.kernel_id === props.currentKernelId ? ' jp-mod-current' : ''}`}
              data-testid="berth-kernel"
              data-kernel-id={k.kernel_id}
            >
              <div className="jp-BerthKernel-header">
                <span className="jp-BerthKernel-name" title={k.kernel_id}>
                  {label}
                </span>
                <button
                  className="jp-BerthButton jp-mod-small jp-mod-warn"
                  onClick={() => props.onStop(k, label)}
                  aria-label={trans.__('Stop kernel %1', label)}
                  data-testid="berth-kernel-stop"
                >
                  {trans.__('Stop')}
                </button>
              </div>
              <div className="jp-BerthKernel-limits" data-testid="berth-kernel-limits">
                {describeLimits(k.resources, k.image, props.showDisk ? diskLabel(k.resources.disk, trans) : [])}
                {k.started_at ? ` · ${trans.__('running %1', formatUptime(k.started_at))}` : ''}
              </div>
              <Meter
                label={trans.__('CPU')}
                value={fraction(cores ?? 0, k.resources.cpu)}
                text={trans.__('%1 of %2', cores === null || cores === undefined ? '—' : trimNumber(cores), formatCpu(k.resources.cpu))}
              />
              <Meter label={trans.__('Memory')} value={fraction(k.usage?.mem_bytes, k.resources.mem)} text={describeMemoryUse(k.usage, k.resources.mem)} />
              {gpuShare > 0 && (
                <Meter
                  label={trans.__('GPU memory')}
                  {...describeGpuUse(gpuShare, k.usage?.gpu_mem_bytes, gpuMemoryCap(k.gpu_devices, props.model.gpus))}
                />
              )}
              {k.usage?.mem_peak_bytes ? (
                <div className="jp-BerthKernel-peak">{trans.__('peak memory %1', formatBytes(k.usage.mem_peak_bytes))}</div>
              ) : null}
            </li>
          );
        })}
      </ul>
    </Section>
  );
}

export function GpusSection(props: { model: BerthModel; trans: TranslationBundle }): JSX.Element {
  const trans = props.trans;
  const gpus = props.model.gpus;
  const error = props.model.errors.gpus;
  return (
    <Section title={trans.__('GPUs')} testId="berth-gpus">
      {error ? (
        <div className="jp-BerthNotice jp-mod-error" role="alert">
          {error}
        </div>
      ) : !gpus || gpus.devices.length === 0 ? (
        <div className="jp-BerthEmpty">{gpus?.message || trans.__('No GPU on this host.')}</div>
      ) : (
        <ul className="jp-BerthGpus">
          {gpus.devices.map((d, i) => {
            const free = gpus.free[d.uuid] ?? 0;
            return (
              <li key={d.uuid} data-testid="berth-gpu-device">
                <div className="jp-BerthGpu-name" title={d.uuid}>
                  {describeDevice(d, i, gpus.metrics?.[d.uuid])}
                </div>
                <Meter
                  label={trans.__('Free')}
                  remaining
                  value={free}
                  text={free > 0 ? trans.__('%1 free', formatGpu(free).replace(' GPU', '')) : trans.__('fully used')}
                />
              </li>
            );
          })}
        </ul>
      )}
    </Section>
  );
}

/** The short label of a kernel without a known document. */
export function fallbackKernelLabel(k: IBerthKernel): string {
  return `${imageShortName(k.image) || k.name || 'kernel'} (${k.kernel_id.slice(0, 8)})`;
}
