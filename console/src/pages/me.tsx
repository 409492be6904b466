import { api } from '../api.js';
import { DailyChart, HourlyChart } from '../chart.js';
import type { DayUsage, SelfReport } from '../types.js';
import { Loaded, Time, useLoad } from '../ui.js';
import { UsageSummary } from './usage-summary.js';

/** A key's own page: its limits and what remains, usage and spend against budget, models, expiry, warnings. */
export function MePage() {
  const [me, reload] = useLoad(() => api<SelfReport>('GET', 'me'), []);
  const [history, reloadHistory] = useLoad(() => api<{ data: DayUsage[] }>('GET', 'me/history'), []);
  return (
    <Loaded load={me} what="your key" retry={reload}>
      {(report) => {
        const near = Object.entries(report.budget_usd).filter(([, cap]) => cap.limit > 0 && cap.used / cap.limit >= 0.8);
        return (
          <>
            <h1>Key {report.id}</h1>
            {near.map(([window, cap]) => (
              <p class="warning" role="alert" key={window}>
                Near its {window} budget: {Math.round((cap.used / cap.limit) * 100)}% used.
              </p>
            ))}
            {(report.retiring_models ?? []).map((r) => (
              <p class="warning retiring" role="alert" key={`retiring-${r.model}`}>
                This key still calls {r.model}, which shuts down on {r.shutdown_date ?? 'a set date'}
                {r.successor ? `; move to ${r.successor}` : ''} ({r.requests} {r.requests === 1 ? 'request' : 'requests'} on this gateway instance since it started).
              </p>
            ))}
            <dl class="facts">
              <dt>Status</dt>
              <dd>
                <span class={`badge ${report.status}`}>{report.status}</span>
              </dd>
              <dt>Tier</dt>
              <dd>{report.tier}</dd>
              <dt>Secret</dt>
              <dd class="mono">{report.key_hint ?? '—'}</dd>
              <dt>Allowed models</dt>
              <dd>{report.models ? report.models.join(', ') : 'every model'}</dd>
              <dt>Expires</dt>
              <dd>
                <Time iso={report.expires_at} />
              </dd>
              <dt>Limits</dt>
              <dd>
                {Object.entries(report.limits)
                  .map(([name, value]) => `${name}: ${value ?? 'none'}`)
                  .join(', ')}
              </dd>
            </dl>
            <h2>Usage</h2>
            <UsageSummary report={report} />
            <Loaded load={history} what="the history" retry={reloadHistory}>
              {(h) => <DailyChart days={h.data} title="Spend and requests by day (UTC)" />}
            </Loaded>
            <HourlyChart path="me/hourly" />
          </>
        );
      }}
    </Loaded>
  );
}
