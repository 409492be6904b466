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

const HOUR_MS = 3_600_000;

/** One UTC hour of the hourly usage history (settled usage only: nothing is capped per hour). */
export interface HourWindow {
  /** `h:2026-11-26T13` */
  readonly id: string;
  readonly endsAt: number;
}

export function hourAt(nowMs: number): HourWindow {
  const start = Math.floor(nowMs / HOUR_MS) * HOUR_MS;
  return { id: `h:${new Date(start).toISOString().slice(0, 13)}`, endsAt: start + HOUR_MS };
}

export interface WindowsNow {
  readonly now: number;
  readonly windows: readonly Window[];
  readonly hour: HourWindow;
}

/**
 * The windows and the hour of `clock()`, recomputed only when the hour changes (this runs on
 * every request). Days start on an hour, so the day's windows change only with the hour.
 */
export function windowClock(clock: () => number): () => WindowsNow {
  const first = clock();
  let windows = windowsAt(first);
  let hour = hourAt(first);
  return () => {
    const now = clock();
    if (now >= hour.endsAt || now < hour.endsAt - HOUR_MS) {
      hour = hourAt(now);
      if (now >= windows[0].endsAt || now < windows[0].endsAt - 86_400_000) windows = windowsAt(now);
    }
    return { now, windows, hour };
  };
}
