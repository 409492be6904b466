/**
 * Durations as OpenAI writes them (Go's time.Duration format): `12ms`, `1s`, `9.816s`, `6m0s`,
 * `7m12s`, `1h0m0s`. Input in whole milliseconds.
 */
export function goDuration(ms: number): string {
  const total = Math.max(0, Math.ceil(ms));
  if (total === 0) return '0s';
  if (total < 1000) return `${total}ms`;
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / 60_000);
  const millis = total % 60_000;
  const seconds = secondsText(millis);
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}

/** `millis` (0–59,999) as seconds with up to three decimals, trailing zeros dropped: integer arithmetic, no regex (per answer). */
function secondsText(millis: number): string {
  const whole = Math.floor(millis / 1000);
  const frac = millis % 1000;
  if (frac === 0) return String(whole);
  if (frac % 100 === 0) return `${whole}.${frac / 100}`;
  if (frac % 10 === 0) return `${whole}.${String(frac / 10).padStart(2, '0')}`;
  return `${whole}.${String(frac).padStart(3, '0')}`;
}
