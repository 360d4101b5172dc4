/**
 * The "what to run" part of the sidebar: environment and version (with frameworks and
 * size), a preset, CPU / memory / GPU / disk bounded by the policy with what is left of the
 * quota, and the folders to attach.
 */

import type { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import {
  describeRemaining,
  folderIsReadOnly,
  folderKey,
  formatBytes,
  formatCpu,
  formatGpu,
  GiB,
  IBounds,
  MiB,
  overQuota
} from '../format';
import { clampDerivedDisk, diskProblem, IDiskOffer } from '../disk';
import { groupByLanguage, groupImages, imageFacts, splitRef } from '../images';
import { BerthModel } from '../model';
import type { IChoice, IPreset, IResources } from '../types';
import { Section, SliderField, useId } from './controls';

export interface IChoiceFormProps {
  model: BerthModel;
  choice: IChoice;
  bounds: IBounds;
  /** the resources of the current kernel, released if it is replaced (for the quota hint) */
  replacing?: IResources | null;
  onChange: (choice: IChoice) => void;
  /** the sidebar's strings (JupyterLab's translator) */
  trans: TranslationBundle;
  /** whether the disk field is offered, and how the limit holds (disk.ts `diskOffer`) */
  disk?: IDiskOffer;
}

export function EnvironmentSection(props: IChoiceFormProps): JSX.Element {
  const { model, choice, bounds, onChange, trans } = props;
  const envs = React.useMemo(() => groupImages(model.images), [model.images]);
  const envKey = choice.image ? splitRef(choice.image)[0] : '';
  const env = envs.find(e => e.key === envKey) ?? envs[0];
  const image = env?.versions.find(v => v.ref === choice.image)?.image;
  const facts = imageFacts(image);
  const envId = useId('berth-env');
  const versionId = useId('berth-version');
  const presetId = useId('berth-preset');
  const [preset, setPreset] = React.useState('');

  const applyPreset = (p: IPreset | undefined) => {
    setPreset(p?.name ?? '');
    if (!p) {
      return;
    }
    const offered = p.image && envs.some(e => e.versions.some(v => v.ref === p.image));
    onChange({
      ...choice,
      image: offered ? (p.image as string) : choice.image,
      cpu: p.resources.cpu,
      mem: p.resources.mem,
      gpu: p.resources.gpu ?? 0,
      // a preset's disk is kept within the policy's max_disk, as the server keeps it
      ...(choice.disk !== undefined && typeof p.resources.disk === 'number'
        ? { disk: clampDerivedDisk(p.resources.disk, bounds.disk) }
        : {})
    });
  };

  return (
    <Section title={trans.__('Environment')} testId="berth-environment">
      {model.errors.images && (
        <div className="jp-BerthNotice jp-mod-error" role="alert">
          {model.errors.images}
        </div>
      )}
      {model.presets.length > 0 && (
        <div className="jp-BerthField">
          <label className="jp-BerthField-label" htmlFor={presetId}>
            {trans.__('Preset')}
          </label>
          <select
            id={presetId}
            className="jp-mod-styled jp-BerthSelect"
            value={preset}
            onChange={e => applyPreset(model.presets.find(p => p.name === e.currentTarget.value))}
            data-testid="berth-preset"
          >
            <option value="">{trans.__('Custom')}</option>
            {model.presets.map(p => (
              <option key={p.name} value={p.name} title={p.description ?? ''}>
                {p.display_name}
              </option>
            ))}
          </select>
        </div>
      )}
      <div className="jp-BerthField">
        <label className="jp-BerthField-label" htmlFor={envId}>
          {trans.__('Environment')}
        </label>
        <select
          id={envId}
          className="jp-mod-styled jp-BerthSelect"
          value={env?.key ?? ''}
          disabled={envs.length === 0}
          onChange={e => {
            const next = envs.find(x => x.key === e.currentTarget.value);
            setPreset('');
            onChange({ ...choice, image: next?.versions[0]?.ref ?? null });
          }}
          data-testid="berth-image-env"
        >
          {envs.length === 0 && <option value="">{trans.__("The server's default image")}</option>}
          {groupByLanguage(envs).map(g => (
            <optgroup key={g.label} label={g.label}>
              {g.environments.map(e => (
                <option key={e.key} value={e.key}>
                  {e.label}
                </option>
              ))}
            </optgroup>
          ))}
        </select>
      </div>
      <div className="jp-BerthField">
        <label className="jp-BerthField-label" htmlFor={versionId}>
          {trans.__('Version')}
        </label>
        <select
          id={versionId}
          className="jp-mod-styled jp-BerthSelect"
          value={choice.image ?? ''}
          disabled={!env}
          onChange={e => {
            setPreset('');
            onChange({ ...choice, image: e.currentTarget.value });
          }}
          data-testid="berth-image-version"
        >
          {env?.versions.map(v => (
            <option key={v.ref} value={v.ref}>
              {v.version}
              {v.image.default ? ` ${trans.__('(default)')}` : ''}
            </option>
          ))}
        </select>
      </div>
      {image && (
        <dl className="jp-BerthFacts" data-testid="berth-image-facts">
          <dt>{trans.__('Image')}</dt>
          <dd title={String(image.digest ?? '')}>{image.ref}</dd>
          {facts.frameworks.length > 0 && (
            <>
              <dt>{trans.__('Frameworks')}</dt>
              <dd>
                <ul className="jp-BerthChips" aria-label={trans.__('Frameworks')}>
                  {facts.frameworks.map(f => (
                    <li key={f} className="jp-BerthChip">
                      {f}
                    </li>
                  ))}
                </ul>
              </dd>
            </>
          )}
          {facts.size && (
            <>
              <dt>{trans.__('Size')}</dt>
              <dd>{facts.size}</dd>
            </>
          )}
          {facts.gpu && (
            <>
              <dt>{trans.__('GPU')}</dt>
              <dd>{trans.__('CUDA-ready')}</dd>
            </>
          )}
        </dl>
      )}
    </Section>
  );
}

export function ResourcesSection(props: IChoiceFormProps): JSX.Element {
  const { model, choice, bounds, onChange, trans } = props;
  const gpuId = useId('berth-gpu');
  const over = overQuota(choice, bounds, props.replacing ?? undefined);
  const maxHint = (max: number, fromPolicy: boolean, format: (n: number) => string) =>
    fromPolicy ? trans.__('at most %1 per kernel', format(max)) : trans.__('no per-kernel limit');
  const gpuNote =
    bounds.gpuOptions.length <= 1 || !Number.isFinite(bounds.gpu.remaining)
      ? bounds.gpuNote
      : `${bounds.gpuNote} · ${trans.__('%1 of your quota', describeRemaining(bounds.gpu.remaining, formatGpu))}`;
  return (
    <Section title={trans.__('Resources')} testId="berth-resources">
      {model.errors.policy && (
        <div className="jp-BerthNotice jp-mod-error" role="alert">
          {model.errors.policy}
        </div>
      )}
      <SliderField
        label={trans.__('CPU cores')}
        unit="CPU"
        value={choice.cpu}
        min={bounds.cpu.min}
        max={bounds.cpu.max}
        step={bounds.cpu.step}
        hint={`${maxHint(bounds.cpu.max, bounds.cpu.fromPolicy, formatCpu)} · ${describeRemaining(bounds.cpu.remaining, formatCpu)}`}
        onChange={cpu => onChange({ ...choice, cpu })}
        testId="berth-cpu"
      />
      <SliderField
        label={trans.__('Memory (MiB)')}
        unit="MiB"
        value={Math.round(choice.mem / MiB)}
        min={Math.round(bounds.mem.min / MiB)}
        max={Math.round(bounds.mem.max / MiB)}
        step={Math.round(bounds.mem.step / MiB)}
        hint={`${formatBytes(choice.mem)} · ${maxHint(bounds.mem.max, bounds.mem.fromPolicy, formatBytes)} · ${describeRemaining(
          bounds.mem.remaining,
          formatBytes
        )}`}
        onChange={mib => onChange({ ...choice, mem: Math.round(mib * MiB) })}
        testId="berth-mem"
      />
      {props.disk && <DiskField {...props} disk={props.disk} />}
      <div className="jp-BerthField">
        <label className="jp-BerthField-label" htmlFor={gpuId}>
          {trans.__('GPU share')}
        </label>
        <select
          id={gpuId}
          className="jp-mod-styled jp-BerthSelect"
          value={String(choice.gpu)}
          disabled={bounds.gpuOptions.length <= 1}
          aria-describedby={`${gpuId}-hint`}
          onChange={e => onChange({ ...choice, gpu: Number(e.currentTarget.value) })}
          data-testid="berth-gpu"
        >
          {bounds.gpuOptions.map(share => (
            <option key={share} value={String(share)}>
              {formatGpu(share)}
            </option>
          ))}
        </select>
        <div id={`${gpuId}-hint`} className="jp-BerthField-hint">
          {gpuNote}
        </div>
      </div>
      {over.length > 0 && (
        <div className="jp-BerthNotice jp-mod-warn" role="status" data-testid="berth-quota-warning">
          {trans.__(
            'More than what is left of your quota (%1). The server will refuse it unless other kernels stop first.',
            over.join('; ')
          )}
        </div>
      )}
    </Section>
  );
}

export function FoldersSection(props: IChoiceFormProps): JSX.Element {
  const { model, choice, onChange, trans } = props;
  const toggle = (name: string, on: boolean) =>
    onChange({ ...choice, folders: on ? [...choice.folders, name] : choice.folders.filter(f => f !== name) });
  return (
    <Section title={trans.__('Folders')} testId="berth-folders">
      {model.errors.folders ? (
        <div className="jp-BerthNotice" role="status">
          {trans.__('Folders are not available: %1', model.errors.folders)}
        </div>
      ) : model.folders.length === 0 ? (
        <div className="jp-BerthEmpty">{trans.__('No shared folders.')}</div>
      ) : (
        <ul className="jp-BerthFolders">
          {model.folders.map(folder => {
            const readOnly = folderIsReadOnly(folder);
            const key = folderKey(folder);
            const group = folder.owner?.kind === 'group' ? ` (@${folder.owner.name})` : '';
            return (
              <li key={key}>
                <label className="jp-BerthCheck" title={`${key}${folder.mount_path ? ` → ${folder.mount_path}` : ''}`}>
                  <input
                    type="checkbox"
                    checked={choice.folders.includes(key)}
                    onChange={e => toggle(key, e.currentTarget.checked)}
                    data-testid={`berth-folder-${folder.name}`}
                  />
                  <span className="jp-BerthFolder-name">
                    {folder.name}
                    {group}
                  </span>
                  {readOnly && (
                    <span className="jp-BerthBadge" title={trans.__('Mounted read-only in the kernel')}>
                      {trans.__('read-only')}
                    </span>
                  )}
                </label>
              </li>
            );
          })}
        </ul>
      )}
    </Section>
  );
}

/** Whole GiB as typed in the disk field, to at most 4 decimals (64 MiB is 0.0625). */
const toGiB = (bytes: number) => Number((bytes / GiB).toFixed(4));

/**
 * The disk size (GiB) when the server bounds disk, with the policy's `max_disk`, what is left of
 * `total_disk` and how the limit holds; a typed size over `max_disk` (or under the least) is kept and
 * flagged, and the server refuses it in its own words. Where the server bounds no disk, the reason.
 */
function DiskField(props: IChoiceFormProps & { disk: IDiskOffer }): JSX.Element {
  const { choice, bounds, onChange, trans, disk } = props;
  if (!disk.offered || choice.disk === undefined) {
    return (
      <div className="jp-BerthField" data-testid="berth-disk">
        <span className="jp-BerthField-label">{trans.__('Disk space')}</span>
        <div className="jp-BerthField-hint" data-testid="berth-disk-mode">
          {disk.note}
        </div>
      </div>
    );
  }
  const bound = bounds.disk;
  const max = bound.fromPolicy ? trans.__('at most %1 per kernel', formatBytes(bound.max)) : trans.__('no per-kernel limit');
  const problem = diskProblem(choice.disk, bound.max, bound.fromPolicy, trans);
  return (
    <SliderField
      label={trans.__('Disk (GiB)')}
      unit="GiB"
      value={toGiB(choice.disk)}
      min={toGiB(bound.min)}
      max={toGiB(bound.max)}
      step={toGiB(bound.step)}
      clamp={false}
      hint={`${formatBytes(choice.disk)} · ${max} · ${describeRemaining(bound.remaining, formatBytes)}`}
      warn={!!problem}
      onChange={gib => onChange({ ...choice, disk: Math.round(gib * GiB) })}
      testId="berth-disk"
    >
      <div className={`jp-BerthField-hint${disk.warn ? ' jp-mod-warn' : ''}`} data-testid="berth-disk-mode" data-mode={disk.mode}>
        {disk.note}
      </div>
      {problem && (
        <div className="jp-BerthNotice jp-mod-warn" role="alert" data-testid="berth-disk-problem">
          {problem}
        </div>
      )}
    </SliderField>
  );
}
