import { api } from '../api.js';
import type { Overview } from '../types.js';
import { int, Loaded, useLoad, usd } from '../ui.js';

export function OverviewPage() {
  const [load, reload] = useLoad(() => api<Overview>('GET', 'overview'), []);
  return (
    <>
      <h1>Overview</h1>
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
    </>
  );
}
