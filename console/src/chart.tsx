import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { api } from './api.js';
import type { DayUsage, HourUsage, HourlyList } from './types.js';
import { int, Loaded, Time, useLoad } from './ui.js';

interface Point {
  /** Seconds since the epoch (the bucket's start). */
  readonly t: number;
  readonly requests: number;
  readonly cost_usd: number;
}

/** Spend and requests over time (uPlot, canvas); the figures are also in a table for screen readers and keyboard users. */
function UsagePlot({ points, title }: { points: readonly Point[]; title: string }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const width = Math.max(280, Math.min(900, element.clientWidth || 600));
    const plot = new uPlot(
      {
        width,
        height: 220,
        title,
        series: [{}, { label: 'Spend ($)', stroke: '#0b5cad', width: 2, scale: 'usd' }, { label: 'Requests', stroke: '#a34700', width: 2, scale: 'n' }],
        axes: [{}, { scale: 'usd', label: '$', size: 70, values: (_u, ticks) => ticks.map((t) => (t === 0 ? '0' : t.toPrecision(2))) }, { scale: 'n', side: 1, label: 'requests', grid: { show: false } }],
        scales: { x: { time: true } },
      },
      [points.map((p) => p.t), points.map((p) => p.cost_usd), points.map((p) => p.requests)],
      element,
    );
    // Follow the page's width (a phone turned, a window resized).
    const resized = new ResizeObserver(() => plot.setSize({ width: Math.max(280, Math.min(900, element.clientWidth)), height: 220 }));
    resized.observe(element);
    return () => {
      resized.disconnect();
      plot.destroy();
    };
  }, [points, title]);
  return <div ref={box} class="chart" role="img" aria-label={`${title}: chart; the table below has the figures`} />;
}

/** One bucket's figures, as the tables below the plots show them. */
interface Figures {
  readonly requests: number;
  readonly input_tokens: number;
  readonly cached_tokens: number;
  readonly output_tokens: number;
  readonly cost_usd: number;
}

/** A plot's figures as a table (screen readers, keyboard users): one row per bucket with requests. */
function FiguresTable({ summary, caption, first, rows }: { summary: string; caption: string; first: string; rows: readonly { key: string; label: ComponentChildren; u: Figures }[] }) {
  return (
    <details>
      <summary>{summary}</summary>
      <table>
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">{first}</th>
            <th scope="col">Requests</th>
            <th scope="col">Tokens in / cached / out</th>
            <th scope="col">Spend</th>
          </tr>
        </thead>
        <tbody>
          {rows.map(({ key, label, u }) => (
            <tr key={key}>
              <td>{label}</td>
              <td>{u.requests}</td>
              <td>
                {u.input_tokens} / {u.cached_tokens} / {u.output_tokens}
              </td>
              <td>${u.cost_usd.toFixed(6)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}

export function DailyChart({ days, title }: { days: readonly DayUsage[]; title: string }) {
  const points = days.map((d) => ({ t: Date.parse(`${d.day}T00:00:00Z`) / 1000, requests: d.requests, cost_usd: d.cost_usd }));
  return (
    <figure>
      <UsagePlot points={points} title={title} />
      <FiguresTable summary="Figures by day" caption={title} first="Day (UTC)" rows={days.filter((d) => d.requests > 0).map((d) => ({ key: d.day, label: d.day, u: d }))} />
    </figure>
  );
}

const RANGES = [
  [24, 'Last 24 hours'],
  [168, 'Last 7 days'],
] as const;

/**
 * Spend and requests by hour (the hourly usage buckets, cluster-wide): the last 24 hours or 7
 * days. `path`: `me/hourly` or `keys/<id>/hourly`.
 */
export function HourlyChart({ path }: { path: string }) {
  const [hours, setHours] = useState<number>(24);
  const [load, reload] = useLoad(() => api<HourlyList>('GET', `${path}?hours=${hours}`), [path, hours]);
  const label = RANGES.find(([n]) => n === hours)?.[1] ?? `Last ${hours} hours`;
  return (
    <section class="hourly" aria-labelledby="hourly-title">
      <h3 id="hourly-title">By hour</h3>
      <fieldset class="range">
        <legend>Range</legend>
        {RANGES.map(([n, text]) => (
          <label key={n}>
            <input type="radio" name={`hourly-range-${path}`} value={n} checked={hours === n} onChange={() => setHours(n)} /> {text}
          </label>
        ))}
      </fieldset>
      <Loaded load={load} what="the hourly usage" retry={reload}>
        {(list) => {
          if (list.hours_kept === 0) return <p>Hourly usage is not kept (usage.hourly_retention_days is 0).</p>;
          const active = list.data.filter((h) => h.requests > 0);
          const sum = (pick: (h: HourUsage) => number) => list.data.reduce((n, h) => n + pick(h), 0);
          const costNano = sum((h) => h.cost_nano);
          const points = list.data.map((h) => ({ t: Date.parse(h.hour) / 1000, requests: h.requests, cost_usd: h.cost_usd }));
          return (
            <figure>
              <p class="hourly-total">
                {label}: <span class="hourly-requests">{int(sum((h) => h.requests))}</span> requests,{' '}
                <span class="hourly-spend">${(costNano / 1e9).toFixed(6)}</span>
                {list.data.length < hours && ` (hourly usage is kept ${list.hours_kept / 24} days)`}
              </p>
              <UsagePlot points={points} title={`Spend and requests by hour, ${label.toLowerCase()}`} />
              <FiguresTable summary="Figures by hour" caption="Hours with requests" first="Hour" rows={active.map((h) => ({ key: h.hour, label: <Time iso={h.hour} />, u: h }))} />
            </figure>
          );
        }}
      </Loaded>
    </section>
  );
}
