/**
 * The calendar windows of budgets, token quotas and usage: the UTC day, the UTC month, and all time.
 * Window ids name the storage keys, so a request is settled into the windows it was admitted in,
 * even when it ends after midnight.
 */
export type WindowName = 'daily' | 'monthly' | 'total';
export const WINDOW_NAMES: readonly WindowName[] = ['daily', 'monthly', 'total'];

export interface Window {
  readonly name: WindowName;
  /** `d:2026-11-26`, `m:2026-11`, `total`. */
  readonly id: string;
  /** When the window ends (ms since the epoch); Infinity for `total`. */
  readonly endsAt: number;
}

/** How long a window's usage is kept after it ended. */
const RETENTION_MS: Record<WindowName, number> = { daily: 35 * 86_400_000, monthly: 400 * 86_400_000, total: 0 };

export function windowsAt(nowMs: number): readonly [Window, Window, Window] {
  const now = new Date(nowMs);
  const year = now.getUTCFullYear();
  const month = now.getUTCMonth();
  const date = now.getUTCDate();
  const iso = now.toISOString();
  return [
    { name: 'daily', id: `d:${iso.slice(0, 10)}`, endsAt: Date.UTC(year, month, date + 1) },
    { name: 'monthly', id: `m:${iso.slice(0, 7)}`, endsAt: Date.UTC(year, month + 1, 1) },
    { name: 'total', id: 'total', endsAt: Infinity },
  ];
}

/** The expiry of a window's usage hash, from now: its end plus the retention; 0 (never) for `total`. */
export function windowTtlMs(window: Window, nowMs: number): number {
  return window.name === 'total' ? 0 : window.endsAt - nowMs + RETENTION_MS[window.name];
}

/** The windows of `clock()`, recomputed only when the day changes (this runs on every request). */
export function windowClock(clock: () => number): () => { readonly now: number; readonly windows: readonly Window[] } {
  let current = windowsAt(clock());
  return () => {
    const now = clock();
    if (now >= current[0].endsAt || now < current[0].endsAt - 86_400_000) current = windowsAt(now);
    return { now, windows: current };
  };
}
