import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { DayUsage } from './types.js';

/**
 * Spend and requests per UTC day (uPlot, canvas). The same figures are in a table right below
 * for screen readers and keyboard users.
 */
export function DailyChart({ days, title }: { days: readonly DayUsage[]; title: string }) {
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
      [days.map((d) => Date.parse(`${d.day}T00:00:00Z`) / 1000), days.map((d) => d.cost_usd), days.map((d) => d.requests)],
      element,
    );
    // Follow the page's width (a phone turned, a window resized).
    const resized = new ResizeObserver(() => plot.setSize({ width: Math.max(280, Math.min(900, element.clientWidth)), height: 220 }));
    resized.observe(element);
    return () => {
      resized.disconnect();
      plot.destroy();
    };
  }, [days, title]);
  return (
    <figure>
      <div ref={box} class="chart" role="img" aria-label={`${title}: chart; the table below has the figures`} />
      <details>
        <summary>Figures by day</summary>
        <table>
          <caption>{title}</caption>
          <thead>
            <tr>
              <th scope="col">Day (UTC)</th>
              <th scope="col">Requests</th>
              <th scope="col">Tokens in / cached / out</th>
              <th scope="col">Spend</th>
            </tr>
          </thead>
          <tbody>
            {days
              .filter((d) => d.requests > 0)
              .map((d) => (
                <tr key={d.day}>
                  <td>{d.day}</td>
                  <td>{d.requests}</td>
                  <td>
                    {d.input_tokens} / {d.cached_tokens} / {d.output_tokens}
                  </td>
                  <td>${d.cost_usd.toFixed(6)}</td>
                </tr>
              ))}
          </tbody>
        </table>
      </details>
    </figure>
  );
}
