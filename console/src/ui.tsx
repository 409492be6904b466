import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError } from './api.js';

export type Load<T> = { state: 'loading' } | { state: 'error'; error: ApiError } | { state: 'done'; value: T };

/** Runs `fetcher` on mount and on `reload()`; every request has a loading and an error state. */
export function useLoad<T>(fetcher: () => Promise<T>, deps: readonly unknown[]): [Load<T>, () => void] {
  const [load, setLoad] = useState<Load<T>>({ state: 'loading' });
  const [round, setRound] = useState(0);
  useEffect(() => {
    let current = true;
    setLoad({ state: 'loading' });
    fetcher().then(
      (value) => current && setLoad({ state: 'done', value }),
      (error: unknown) => current && setLoad({ state: 'error', error: error instanceof ApiError ? error : new ApiError(0, { message: String(error), param: null, code: null }) }),
    );
    return () => {
      current = false;
    };
  }, [...deps, round]);
  return [load, useCallback(() => setRound((n) => n + 1), [])];
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="loading" role="status">
      Loading {what}…
    </p>
  );
}

export function ErrorBox({ error, retry }: { error: Error; retry?: () => void }) {
  return (
    <div class="error" role="alert">
      <p>{error.message}</p>
      {retry && (
        <button type="button" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}

/** Renders a load: the loading line, the error with a retry, or the content. */
export function Loaded<T>({ load, what, retry, children }: { load: Load<T>; what: string; retry: () => void; children: (value: T) => ComponentChildren }) {
  if (load.state === 'loading') return <Loading what={what} />;
  if (load.state === 'error') return <ErrorBox error={load.error} retry={retry} />;
  return <>{children(load.value)}</>;
}

/** A time in the browser's zone; UTC on hover (title) and for machines (datetime). */
export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <span>—</span>;
  const date = new Date(iso);
  return (
    <time dateTime={date.toISOString()} title={`${date.toISOString().replace('T', ' ').slice(0, 19)} UTC`}>
      {date.toLocaleString()}
    </time>
  );
}

export const usd = (value: number): string => (value >= 0.01 || value === 0 ? `$${value.toFixed(2)}` : `$${value.toPrecision(3)}`);
export const int = (value: number): string => value.toLocaleString();

/** A secret shown this once, with a copy button. */
export function SecretOnce({ secret, onDone }: { secret: string; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  const copy = () =>
    navigator.clipboard.writeText(secret).then(
      () => setCopied(true),
      () => setCopied(false),
    );
  return (
    <section class="secret" aria-labelledby="secret-title">
      <h2 id="secret-title">The new secret</h2>
      <p>Copy it now: it is shown this once and never again.</p>
      <label for="secret-value">Secret</label>
      <input id="secret-value" class="mono" readOnly value={secret} onFocus={(e) => e.currentTarget.select()} />
      <div class="row">
        <button type="button" onClick={copy}>
          Copy
        </button>
        <span role="status">{copied ? 'Copied.' : ''}</span>
        <button type="button" onClick={onDone}>
          I have stored it
        </button>
      </div>
    </section>
  );
}

export function Meter({ label, used, limit, text }: { label: string; used: number; limit: number; text: string }) {
  const share = limit > 0 ? Math.min(1, used / limit) : 1;
  return (
    <div class="meter">
      <span>{label}</span>
      <meter min={0} max={1} low={0.6} high={0.8} optimum={0} value={share} aria-label={`${label}: ${text}`} />
      <span>{text}</span>
    </div>
  );
}
