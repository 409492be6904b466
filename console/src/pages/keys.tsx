import { useState } from 'preact/hooks';
import { api } from '../api.js';
import type { KeyRow, Overview } from '../types.js';
import { Loaded, useLoad, usd } from '../ui.js';

type SortBy = 'id' | 'tier' | 'status' | 'month';

/** What the rate limit headers say is left now, for the first model of the report. */
function remaining(row: KeyRow, what: 'requests' | 'tokens'): string {
  const first = Object.values(row.usage.rate_limits)[0];
  return first?.[`x-ratelimit-remaining-${what}`] ?? '—';
}

function budgetText(row: KeyRow): string {
  const caps = Object.entries(row.usage.budget_usd);
  if (caps.length === 0) return 'no budget';
  return caps.map(([window, cap]) => `${usd(cap.used)} of ${usd(cap.limit)} (${window})`).join(', ');
}

export function KeysPage() {
  const [load, reload] = useLoad(() => api<Overview>('GET', 'overview'), []);
  const [search, setSearch] = useState('');
  const [tier, setTier] = useState('');
  const [status, setStatus] = useState('');
  const [nearOnly, setNearOnly] = useState(false);
  const [sortBy, setSortBy] = useState<SortBy>('id');
  return (
    <>
      <h1>Keys</h1>
      <p>
        <a class="button" href="#/create">
          Create a key
        </a>
      </p>
      <div class="filters" role="search">
        <div class="field">
          <label for="search">Search</label>
          <input id="search" type="search" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="tier-filter">Tier</label>
          <select id="tier-filter" value={tier} onChange={(e) => setTier(e.currentTarget.value)}>
            <option value="">any</option>
            {['free', 'tier-1', 'tier-2', 'tier-3', 'tier-4', 'tier-5'].map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="status-filter">Status</label>
          <select id="status-filter" value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
            <option value="">any</option>
            {['active', 'disabled', 'expired', 'revoked'].map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="sort">Sort by</label>
          <select id="sort" value={sortBy} onChange={(e) => setSortBy(e.currentTarget.value as SortBy)}>
            <option value="id">id</option>
            <option value="tier">tier</option>
            <option value="status">status</option>
            <option value="month">spend this month</option>
          </select>
        </div>
        <label class="choice">
          <input type="checkbox" checked={nearOnly} onChange={(e) => setNearOnly(e.currentTarget.checked)} /> near budget only
        </label>
      </div>
      <Loaded load={load} what="the keys" retry={reload}>
        {(o) => {
          const needle = search.trim().toLowerCase();
          const rows = o.keys
            .filter((row) => !needle || row.key.id.toLowerCase().includes(needle) || (row.key.metadata?.team ?? '').toLowerCase().includes(needle))
            .filter((row) => !tier || row.key.tier === tier)
            .filter((row) => !status || row.key.status === status)
            .filter((row) => !nearOnly || (row.budget_share ?? 0) >= o.near_budget_share)
            .sort((a, b) => (sortBy === 'month' ? b.usage.usage.month.cost_usd - a.usage.usage.month.cost_usd : String(a.key[sortBy]).localeCompare(String(b.key[sortBy]))));
          return (
            <div class="scroll">
              <table>
                <caption>{rows.length} of {o.keys.length} keys</caption>
                <thead>
                  <tr>
                    <th scope="col">Key</th>
                    <th scope="col">Tier</th>
                    <th scope="col">Status</th>
                    <th scope="col">Spend / budget</th>
                    <th scope="col">Requests left (min)</th>
                    <th scope="col">Tokens left (min)</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((row) => (
                    <tr key={row.key.id}>
                      <th scope="row">
                        <a href={`#/keys/${encodeURIComponent(row.key.id)}`}>{row.key.id}</a>
                      </th>
                      <td>{row.key.tier}</td>
                      <td>
                        <span class={`badge ${row.key.status}`}>{row.key.status}</span>
                      </td>
                      <td>{budgetText(row)}</td>
                      <td>{remaining(row, 'requests')}</td>
                      <td>{remaining(row, 'tokens')}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          );
        }}
      </Loaded>
    </>
  );
}
