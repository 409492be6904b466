import type { ComponentChildren } from 'preact';
import { api } from '../api.js';
import type { Overview, Panels } from '../types.js';
import { int, Loaded, Time, useLoad, usd } from '../ui.js';

const LIMIT_NAMES: Record<string, string> = {
  rpm: 'Requests per minute',
  rpd: 'Requests per day',
  tpm: 'Tokens per minute',
  budget: 'Budget',
  token_quota: 'Token quota',
  batch_queue: 'Batch queue',
};
const SAVING_NAMES: Record<string, string> = { prompt_cache: "Provider's prompt cache", response_cache: "Tollgate's response cache" };

/** Dollars to the nano-dollar when below a cent (a single small request's cost shows). */
const exactUsd = (nano: number): string => (nano >= 1e7 || nano === 0 ? usd(nano / 1e9) : `$${(nano / 1e9).toFixed(9).replace(/0+$/, '')}`);

function Empty({ cols, text }: { cols: number; text: string }) {
  return (
    <tr>
      <td colSpan={cols}>{text}</td>
    </tr>
  );
}

/** A panel holding one table: its heading, a note on what it counts, the column heads, the rows, an optional footer. */
function TablePanel({ id, title, note, columns, footer, children }: { id: string; title: string; note: ComponentChildren; columns: readonly string[]; footer?: ComponentChildren; children: ComponentChildren }) {
  return (
    <section aria-labelledby={id} class="panel">
      <h2 id={id}>{title}</h2>
      {note}
      <div class="scroll" tabIndex={0} role="group" aria-labelledby={id}>
        <table>
          <thead>
            <tr>
              {columns.map((c) => (
                <th scope="col" key={c}>
                  {c}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>{children}</tbody>
        </table>
      </div>
      {footer}
    </section>
  );
}

/** The live panels: this instance's counters since it started (not summed across instances). */
function LivePanels({ p }: { p: Panels }) {
  const since = (
    <p class="scope">
      This instance since <Time iso={p.since} />; other instances count their own (their /metrics, or Prometheus, sum them).
      {!p.metrics_enabled && ' Metrics are off (metrics.enabled: false): requests, spend and savings are not counted here.'}
    </p>
  );
  const savedTotal = p.cache_savings.reduce((n, s) => n + s.saved_nano, 0);
  return (
    <>
      <TablePanel id="by-model" title="Spend by model" note={since} columns={['Model', 'Spend', 'Input (cached)', 'Output']}>
        {p.spend_by_model.length === 0 && <Empty cols={4} text="No usage on this instance yet." />}
        {p.spend_by_model.map((row) => (
          <tr key={row.model}>
            <th scope="row">{row.model}</th>
            <td class="spend">{exactUsd(row.cost_nano)}</td>
            <td>
              {int(row.input_tokens)} ({int(row.cached_tokens)})
            </td>
            <td>{int(row.output_tokens)}</td>
          </tr>
        ))}
      </TablePanel>
      <TablePanel
        id="limited"
        title="429s by limit"
        note={since}
        columns={['Limit', 'Refused (429)']}
        footer={p.ceiling_refusals.length > 0 && <p class="scope">A ceiling refusal may have failed over to another upstream instead of answering 429.</p>}
      >
        {p.rate_limited.length === 0 && <Empty cols={2} text="No request refused by a limit on this instance." />}
        {p.rate_limited.map((row) => (
          <tr key={row.limit} data-limit={row.limit}>
            <th scope="row">{LIMIT_NAMES[row.limit] ?? row.limit}</th>
            <td class="count">{int(row.count)}</td>
          </tr>
        ))}
        {p.ceiling_refusals.map((row) => (
          <tr key={`ceiling-${row.upstream}`} data-limit="ceiling">
            <th scope="row">Upstream ceiling of {row.upstream}</th>
            <td class="count">{int(row.count)}</td>
          </tr>
        ))}
      </TablePanel>
      <section aria-labelledby="savings" class="panel">
        <h2 id="savings">Cache savings</h2>
        {since}
        <p>
          Saved: <strong class="saved-total">{exactUsd(savedTotal)}</strong>; {int(p.response_cache_hits)} {p.response_cache_hits === 1 ? 'answer' : 'answers'} served from the response cache.
        </p>
        <ul>
          {p.cache_savings.map((row) => (
            <li key={row.source} data-source={row.source}>
              {SAVING_NAMES[row.source] ?? row.source}: <span class="saved">{exactUsd(row.saved_nano)}</span>
            </li>
          ))}
        </ul>
      </section>
      <TablePanel id="upstreams" title="Upstream health" note={<p class="scope">As this instance sees them now: each instance ejects an upstream on its own failures. Ceiling remaining: after this instance's latest admission (the count itself is shared in Redis).</p>} columns={['Upstream', 'State', 'Ejections', 'Ceiling remaining']}>
        {p.upstreams.map((u) => (
          <tr key={u.id} data-upstream={u.id}>
            <th scope="row">{u.id}</th>
            <td>
              <span class={`badge ${u.state === 'healthy' ? 'active' : 'disabled'}`}>{u.state}</span>
            </td>
            <td>{int(u.ejections)}</td>
            <td class="ceiling">
              {u.ceiling.length === 0 ? (
                'no ceiling, or none taken yet'
              ) : (
                <ul class="plain">
                  {u.ceiling.map((c) => (
                    <li key={`${c.model}-${c.limit}`}>{`${c.model} ${c.limit}: ${int(c.remaining)}`}</li>
                  ))}
                </ul>
              )}
            </td>
          </tr>
        ))}
      </TablePanel>
      <TablePanel id="retired" title="Callers of retiring models" note={since} columns={['Key', 'Model', 'Shutdown', 'Successor', 'Requests']}>
        {p.retired_callers.length === 0 && <Empty cols={5} text="No key called a model with a shutdown date on this instance." />}
        {p.retired_callers.map((row) => (
          <tr key={`${row.key}-${row.model}`}>
            <th scope="row">{row.key === null ? 'every key (metrics.per_key_labels is false)' : <a href={`#/keys/${encodeURIComponent(row.key)}`}>{row.key}</a>}</th>
            <td>{row.model}</td>
            <td>{row.shutdown_date ?? '—'}</td>
            <td>{row.successor ?? '—'}</td>
            <td class="count">{int(row.requests)}</td>
          </tr>
        ))}
      </TablePanel>
    </>
  );
}

export function OverviewPage() {
  const [load, reload] = useLoad(() => api<Overview>('GET', 'overview'), []);
  const [live, reloadLive] = useLoad(() => api<Panels>('GET', 'overview/panels'), []);
  return (
    <>
      <h1>Overview</h1>
      <p class="scope">Spend, requests and cached tokens by key: every instance, from the usage counters in Redis.</p>
      <Loaded load={load} what="the overview" retry={reload}>
        {(o) => {
          const near = o.keys.filter((row) => row.budget_share !== null && row.budget_share >= o.near_budget_share);
          const share = (cached: number, input: number) => (input === 0 ? '0%' : `${Math.round((cached / input) * 100)}%`);
          const byKey = [...o.keys].sort((a, b) => b.usage.usage.month.cost_usd - a.usage.usage.month.cost_usd);
          return (
            <>
              <section aria-labelledby="totals" class="cards">
                <h2 id="totals" class="sr-only">
                  Totals
                </h2>
                <div class="card">
                  <h3>Spend today</h3>
                  <p class="big">{usd(o.today.cost_usd)}</p>
                  <p>{int(o.today.requests)} requests</p>
                </div>
                <div class="card">
                  <h3>Spend this month</h3>
                  <p class="big">{usd(o.month.cost_usd)}</p>
                  <p>{int(o.month.requests)} requests</p>
                </div>
                <div class="card">
                  <h3>Cached input this month</h3>
                  <p class="big">{share(o.month.cached_tokens, o.month.input_tokens)}</p>
                  <p>
                    {int(o.month.cached_tokens)} of {int(o.month.input_tokens)} input tokens
                  </p>
                </div>
                <div class="card">
                  <h3>Keys near their budget</h3>
                  <p class="big">{near.length}</p>
                  <p>at {Math.round(o.near_budget_share * 100)}% or more of a budget</p>
                </div>
              </section>
              <section aria-labelledby="near">
                <h2 id="near">Near their budget</h2>
                {near.length === 0 ? (
                  <p>No key has used {Math.round(o.near_budget_share * 100)}% of a budget.</p>
                ) : (
                  <ul>
                    {near.map((row) => (
                      <li key={row.key.id}>
                        <a href={`#/keys/${encodeURIComponent(row.key.id)}`}>{row.key.id}</a>: {Math.round((row.budget_share ?? 0) * 100)}% of a budget used
                      </li>
                    ))}
                  </ul>
                )}
              </section>
              <section aria-labelledby="by-key">
                <h2 id="by-key">Spend by key</h2>
                <div class="scroll">
                  <table>
                    <thead>
                      <tr>
                        <th scope="col">Key</th>
                        <th scope="col">Today</th>
                        <th scope="col">This month</th>
                        <th scope="col">Requests today</th>
                      </tr>
                    </thead>
                    <tbody>
                      {byKey.map((row) => (
                        <tr key={row.key.id}>
                          <th scope="row">
                            <a href={`#/keys/${encodeURIComponent(row.key.id)}`}>{row.key.id}</a>
                          </th>
                          <td>{usd(row.usage.usage.today.cost_usd)}</td>
                          <td>{usd(row.usage.usage.month.cost_usd)}</td>
                          <td>{int(row.usage.usage.today.requests)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              </section>
            </>
          );
        }}
      </Loaded>
      <Loaded load={live} what="this instance's figures" retry={reloadLive}>
        {(p) => <LivePanels p={p} />}
      </Loaded>
    </>
  );
}
