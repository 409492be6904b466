/**
 * Milliseconds as JSON number text with at most two decimals: the text of
 * `String(Math.round(value * 100) / 100)`, built from integers. The log line and `Server-Timing`
 * write such figures on every request, and turning a fractional double into its shortest text
 * (what `String` does) costs several times the integer formatting.
 */
export function hundredths(value: number): string {
  const h = Math.round(value * 100);
  // Integers only where they are exact and small (the usual durations); anything else, as before.
  if (!(h >= 0 && h <= 0x7fffffff)) return String(h / 100);
  const whole = Math.floor(h / 100);
  const part = h - whole * 100;
  if (part === 0) return String(whole);
  if (part % 10 === 0) return `${whole}.${part / 10}`;
  return part < 10 ? `${whole}.0${part}` : `${whole}.${part}`;
}
