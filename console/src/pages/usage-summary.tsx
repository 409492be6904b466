import type { UsageReport } from '../types.js';
import { int, Meter, Time, usd } from '../ui.js';

/** Usage today / this month / total, budgets and quotas against their caps, rate limits now. */
export function UsageSummary({ report }: { report: UsageReport }) {
  const { today, month, total } = report.usage;
  return (
    <>
      <div class="scroll">
        <table>
          <thead>
            <tr>
              <th scope="col">Window</th>
              <th scope="col">Requests</th>
              <th scope="col">Input (cached)</th>
              <th scope="col">Output</th>
              <th scope="col">Spend</th>
            </tr>
          </thead>
          <tbody>
            {(
              [
                ['Today', today],
                ['This month', month],
                ['Total', total],
              ] as const
            ).map(([label, w]) => (
                <tr key={label}>
                  <th scope="row">{label}</th>
                  <td class="requests">{int(w.requests)}</td>
                  <td>
                    {int(w.input_tokens)} ({int(w.cached_tokens)})
                  </td>
                  <td>{int(w.output_tokens)}</td>
                  <td class="spend">{usd(w.cost_usd)}</td>
                </tr>
            ))}
          </tbody>
        </table>
      </div>
      {Object.entries(report.budget_usd).map(([window, cap]) => (
        <div key={`b-${window}`}>
          <Meter label={`${window} budget`} used={cap.used} limit={cap.limit} text={`${usd(cap.used)} of ${usd(cap.limit)}, ${usd(cap.remaining)} left`} />
          {cap.resets_at && (
            <small>
              renews <Time iso={cap.resets_at} />
            </small>
          )}
        </div>
      ))}
      {Object.entries(report.token_quota).map(([window, cap]) => (
        <Meter key={`t-${window}`} label={`${window} tokens`} used={cap.used} limit={cap.limit} text={`${int(cap.used)} of ${int(cap.limit)}, ${int(cap.remaining)} left`} />
      ))}
      <h3>Rate limits now</h3>
      <div class="scroll">
        <table>
          <thead>
            <tr>
              <th scope="col">Model</th>
              <th scope="col">Requests left / limit</th>
              <th scope="col">Tokens left / limit</th>
            </tr>
          </thead>
          <tbody>
            {Object.entries(report.rate_limits).map(([model, h]) => (
              <tr key={model}>
                <th scope="row">{model}</th>
                <td>
                  {h['x-ratelimit-remaining-requests'] ?? '—'} / {h['x-ratelimit-limit-requests'] ?? '—'}
                </td>
                <td>
                  {h['x-ratelimit-remaining-tokens'] ?? '—'} / {h['x-ratelimit-limit-tokens'] ?? '—'}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
