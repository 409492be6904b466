/** The admin API over HTTP (global fetch), for the CLI. */

export interface KeyJson {
  readonly id: string;
  readonly source: string;
  readonly status: string;
  readonly tier: string;
  readonly key?: string;
  readonly key_hint: string | null;
  readonly models?: readonly string[];
  readonly limits?: Record<string, unknown>;
  readonly budget_usd?: Record<string, number | null>;
  readonly token_quota?: Record<string, number | null>;
  readonly expires_at?: string;
  readonly disabled?: boolean;
  readonly metadata?: Record<string, string>;
  readonly created_at: string | null;
  readonly updated_at: string | null;
  readonly revoked_at: string | null;
  readonly [field: string]: unknown;
}

export interface WindowJson {
  readonly window: string;
  readonly requests: number;
  readonly input_tokens: number;
  readonly cached_tokens: number;
  readonly output_tokens: number;
  readonly total_tokens: number;
  readonly cost_usd: number;
  readonly reserved_usd: number;
}

export interface CapJson {
  readonly limit: number;
  readonly used: number;
  readonly remaining: number;
  readonly resets_at: string | null;
}

export interface UsageJson {
  readonly id: string;
  readonly usage: { readonly today: WindowJson; readonly month: WindowJson; readonly total: WindowJson };
  readonly budget_usd: Record<string, CapJson>;
  readonly token_quota: Record<string, CapJson>;
  readonly rate_limits: Record<string, Record<string, string>>;
}

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
