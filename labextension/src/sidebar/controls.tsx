/**
 * Small accessible controls of the sidebar: a slider bound to a number field, a meter,
 * a section with a heading.
 */

import * as React from 'react';

let nextId = 0;
/** A stable id for label/aria wiring. */
export function useId(prefix: string): string {
  const ref = React.useRef<string>();
  if (!ref.current) {
    ref.current = `${prefix}-${++nextId}`;
  }
  return ref.current;
}

export interface ISliderFieldProps {
  label: string;
  /** the value in the control's unit (cores, MiB) */
  value: number;
  min: number;
  max: number;
  step: number;
  unit: string;
  /** a line under the control: the policy's maximum and what is left */
  hint?: string;
  warn?: boolean;
  disabled?: boolean;
  /**
   * `false`: a typed value outside min…max is kept (and given to `onChange`) rather than clamped, so that
   * the form can say what is wrong with it; the slider still spans min…max. Default `true`.
   */
  clamp?: boolean;
  /** more lines under the hint (how the limit holds, what is wrong with the value) */
  children?: React.ReactNode;
  onChange: (value: number) => void;
  testId: string;
}

/** A range slider and a number field that move together; both keyboard-operable. */
export function SliderField(props: ISliderFieldProps): JSX.Element {
  const id = useId(props.testId);
  const clamp = props.clamp ?? true;
  const [text, setText] = React.useState(String(props.value));
  React.useEffect(() => setText(String(props.value)), [props.value]);
  const commit = (raw: string) => {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) {
      setText(String(props.value));
      return;
    }
    if (!clamp && n <= 0) {
      setText(String(props.value));
      return;
    }
    const clamped = clamp ? Math.min(props.max, Math.max(props.min, n)) : n;
    setText(String(clamped));
    props.onChange(clamped);
  };
  return (
    <div className="jp-BerthField">
      <label className="jp-BerthField-label" htmlFor={`${id}-number`}>
        {props.label}
      </label>
      <div className="jp-BerthField-row">
        <input
          type="range"
          className="jp-BerthSlider"
          aria-label={`${props.label} slider`}
          aria-describedby={props.hint ? `${id}-hint` : undefined}
          min={props.min}
          max={props.max}
          step={props.step}
          value={props.value}
          disabled={props.disabled}
          onChange={e => props.onChange(Number(e.currentTarget.value))}
          data-testid={`${props.testId}-slider`}
        />
        <input
          id={`${id}-number`}
          type="number"
          className="jp-BerthNumber jp-mod-styled"
          // Unclamped: no bounds for the browser to enforce (it would block the form's submit with its
          // own bubble); the form says what is wrong with the value.
          min={clamp ? props.min : undefined}
          max={clamp ? props.max : undefined}
          step={clamp ? props.step : 'any'}
          value={text}
          disabled={props.disabled}
          aria-describedby={props.hint ? `${id}-hint` : undefined}
          onChange={e => {
            setText(e.currentTarget.value);
            const n = Number(e.currentTarget.value);
            const inBounds = clamp ? n >= props.min && n <= props.max : n > 0;
            if (e.currentTarget.value.trim() !== '' && Number.isFinite(n) && inBounds) {
              props.onChange(n);
            }
          }}
          onBlur={e => commit(e.currentTarget.value)}
          onKeyDown={e => {
            if (e.key === 'Enter') {
              // Enter sets the value; it does not start a kernel (no implicit form submission).
              e.preventDefault();
              commit(e.currentTarget.value);
            }
          }}
          data-testid={`${props.testId}-input`}
        />
        <span className="jp-BerthField-unit">{props.unit}</span>
      </div>
      {props.hint && (
        <div id={`${id}-hint`} className={`jp-BerthField-hint${props.warn ? ' jp-mod-warn' : ''}`}>
          {props.hint}
        </div>
      )}
      {props.children}
    </div>
  );
}

/** A horizontal meter (`role="meter"`) with a text label. */
export function Meter(props: {
  label: string;
  value: number;
  text: string;
  testId?: string;
  /** the bar shows what is left (a device's free share): warn when little is left, not when much */
  remaining?: boolean;
}): JSX.Element {
  const pct = Math.round(Math.min(1, Math.max(0, props.value)) * 100);
  const used = props.remaining ? 100 - pct : pct;
  const level = used >= 90 ? ' jp-mod-high' : used >= 70 ? ' jp-mod-mid' : '';
  return (
    <div className="jp-BerthMeter" data-testid={props.testId}>
      <span className="jp-BerthMeter-label">{props.label}</span>
      <div
        className="jp-BerthMeter-track"
        role="meter"
        aria-label={props.label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct}
        aria-valuetext={props.text}
      >
        <div className={`jp-BerthMeter-bar${level}`} style={{ width: `${pct}%` }} />
      </div>
      <span className="jp-BerthMeter-text">{props.text}</span>
    </div>
  );
}

/** A titled section of the sidebar. */
export function Section(props: { title: string; testId: string; children: React.ReactNode; actions?: React.ReactNode }): JSX.Element {
  const id = useId(props.testId);
  return (
    <section className="jp-BerthSection" aria-labelledby={id} data-testid={props.testId}>
      <div className="jp-BerthSection-header">
        <h3 id={id} className="jp-BerthSection-title">
          {props.title}
        </h3>
        {props.actions}
      </div>
      {props.children}
    </section>
  );
}
