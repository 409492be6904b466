/**
 * The one path form tollgate serves and forwards: `/v1/…` segments of the characters OpenAI's ids
 * and model names use (`file-abc`, `ft:gpt-4o-mini:org::id`, `2025-04-14`), no empty, `.` or `..`
 * segment, no percent-encoding, no trailing slash, no absolute-form target. Anything else could
 * mean one route to tollgate and another to the upstream, so it is answered 404 `Invalid URL`.
 */
const CANONICAL = /^\/v1(?:\/(?!\.{1,2}(?:\/|\?|$))[A-Za-z0-9._:~-]+)+(?:\?|$)/;

export function isCanonicalPath(url: string): boolean {
  return CANONICAL.test(url);
}

/** The path of a request target, without its query. */
export function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}
