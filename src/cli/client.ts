/** The admin API over HTTP (global fetch), for the CLI. It shares the server's types, not its code. */
import type { KeyView } from '../keys/admin.js';
import type { UsageReport } from '../quota/report.js';

/** A key as the admin API answers it; `key` (the secret) only from create and rotate. */
export type KeyJson = KeyView & { readonly key?: string };

/** A usage report as the admin API answers it. */
export type UsageJson = UsageReport & { readonly id: string };

/** An error answer of the admin API (OpenAI's envelope). */
export class AdminError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class AdminClient {
  private readonly base: string;

  constructor(
    base: string,
    private readonly token: string,
  ) {
    this.base = base.replace(/\/+$/, '');
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new AdminError(res.status, `unexpected answer from ${this.base}: ${text.slice(0, 200)}`);
    }
    if (!res.ok) {
      const error = (parsed as { error?: { message?: string } }).error;
      throw new AdminError(res.status, error?.message ?? text.slice(0, 200));
    }
    return parsed as T;
  }

  list(): Promise<{ data: KeyJson[] }> {
    return this.call('GET', '/admin/keys');
  }
  get(id: string): Promise<KeyJson> {
    return this.call('GET', `/admin/keys/${encodeURIComponent(id)}`);
  }
  create(body: Record<string, unknown>): Promise<KeyJson> {
    return this.call('POST', '/admin/keys', body);
  }
  update(id: string, body: Record<string, unknown>): Promise<KeyJson> {
    return this.call('PATCH', `/admin/keys/${encodeURIComponent(id)}`, body);
  }
  revoke(id: string): Promise<KeyJson> {
    return this.call('DELETE', `/admin/keys/${encodeURIComponent(id)}`);
  }
  rotate(id: string): Promise<KeyJson> {
    return this.call('POST', `/admin/keys/${encodeURIComponent(id)}/rotate`);
  }
  usage(id: string, models: readonly string[]): Promise<UsageJson> {
    const query = models.map((m) => `model=${encodeURIComponent(m)}`).join('&');
    return this.call('GET', `/admin/keys/${encodeURIComponent(id)}/usage${query ? `?${query}` : ''}`);
  }
}
