import { useState } from 'preact/hooks';
import { api, ApiError } from '../api.js';
import { DailyChart, HourlyChart } from '../chart.js';
import { PolicyForm } from '../policy-form.js';
import type { DayUsage, KeyView, UsageReport } from '../types.js';
import { ErrorBox, Loaded, SecretOnce, Time, useLoad } from '../ui.js';
import { UsageSummary } from './usage-summary.js';

const path = (id: string): string => `admin/keys/${encodeURIComponent(id)}`;

export function KeyDetailPage({ id }: { id: string }) {
  const [key, reloadKey] = useLoad(() => api<KeyView>('GET', path(id)), [id]);
  const [usage, reloadUsage] = useLoad(() => api<UsageReport>('GET', `${path(id)}/usage`), [id]);
  const [history, reloadHistory] = useLoad(() => api<{ data: DayUsage[] }>('GET', `keys/${encodeURIComponent(id)}/history`), [id]);
  const [secret, setSecret] = useState<string | null>(null);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const [confirm, setConfirm] = useState('');
  const act = async (run: () => Promise<void>) => {
    setActionError(null);
    try {
      await run();
      reloadKey();
    } catch (err) {
      setActionError(err instanceof ApiError ? err : new ApiError(0, { message: String(err), param: null, code: null }));
    }
  };
  return (
    <>
      <h1>Key {id}</h1>
      {secret && <SecretOnce secret={secret} onDone={() => setSecret(null)} />}
      {actionError && <ErrorBox error={actionError} />}
      <Loaded load={key} what="the key" retry={reloadKey}>
        {(view) => (
          <>
            <dl class="facts">
              <dt>Status</dt>
              <dd>
                <span class={`badge ${view.status}`}>{view.status}</span>
              </dd>
              <dt>Source</dt>
              <dd>{view.source === 'config' ? 'config file (read-only here)' : 'admin API'}</dd>
              <dt>Secret</dt>
              <dd class="mono">{view.key_hint ?? '—'}</dd>
              <dt>Created</dt>
              <dd>
                <Time iso={view.created_at} />
              </dd>
              <dt>Expires</dt>
              <dd>
                <Time iso={view.expires_at} />
              </dd>
            </dl>
            {view.source === 'api' && view.status !== 'revoked' && (
              <section aria-labelledby="actions">
                <h2 id="actions">Actions</h2>
                <div class="row">
                  <button type="button" onClick={() => act(async () => setSecret((await api<{ key: string }>('POST', `${path(id)}/rotate`)).key))}>
                    Rotate the secret
                  </button>
                  <button type="button" onClick={() => act(async () => void (await api('PATCH', path(id), { disabled: view.status === 'disabled' ? null : true })))}>
                    {view.status === 'disabled' ? 'Enable' : 'Disable'}
                  </button>
                </div>
                <form
                  class="danger"
                  onSubmit={(e) => {
                    e.preventDefault();
                    void act(async () => void (await api('DELETE', path(id))));
                  }}
                >
                  <div class="field">
                    <label for="revoke-confirm">Type the key id ({id}) to revoke it for good</label>
                    <input id="revoke-confirm" value={confirm} onInput={(e) => setConfirm(e.currentTarget.value)} autoComplete="off" />
                  </div>
                  <button type="submit" disabled={confirm !== id}>
                    Revoke
                  </button>
                </form>
              </section>
            )}
            <section aria-labelledby="policy">
              <h2 id="policy">Policy</h2>
              <PolicyForm
                key={view.updated_at ?? view.id}
                initial={view}
                readOnly={view.source === 'config' || view.status === 'revoked'}
                submitLabel="Save the policy"
                onSubmit={async (policy) => {
                  await api('PATCH', path(id), policy);
                  reloadUsage();
                }}
              />
            </section>
          </>
        )}
      </Loaded>
      <section aria-labelledby="usage">
        <h2 id="usage">Usage</h2>
        <Loaded load={usage} what="the usage" retry={reloadUsage}>
          {(report) => <UsageSummary report={report} />}
        </Loaded>
        <Loaded load={history} what="the history" retry={reloadHistory}>
          {(h) => <DailyChart days={h.data} title="Spend and requests by day (UTC)" />}
        </Loaded>
        <HourlyChart path={`keys/${encodeURIComponent(id)}/hourly`} />
      </section>
    </>
  );
}
