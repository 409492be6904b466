/**
 * How deep client JSON may nest. JSON.parse accepts any depth, but every recursive walker after it
 * (the cache key, the prompt fingerprint, JSON.stringify of a rewritten body) would overflow the
 * stack on a 100k-level value and answer 500. Real requests nest a dozen levels or so (a tool's
 * JSON schema included); 64 leaves room and is the depth the token estimate walks to.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Whether `value` nests deeper than MAX_JSON_DEPTH. Checked once, where a body is parsed, so no
 * walker after it needs its own guard. Recursion is safe here: it stops at the bound. Strings
 * and numbers cost nothing, so a large prompt is as cheap to check as a small one.
 */
export function exceedsJsonDepth(value: unknown, depth = 1): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (depth > MAX_JSON_DEPTH) return true;
  if (Array.isArray(value)) {
    for (const item of value) if (item !== null && typeof item === 'object' && exceedsJsonDepth(item, depth + 1)) return true;
    return false;
  }
  for (const key in value) {
    const member = (value as Record<string, unknown>)[key];
    if (member !== null && typeof member === 'object' && exceedsJsonDepth(member, depth + 1)) return true;
  }
  return false;
}
