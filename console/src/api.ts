/** Calls to the console's API: same origin, the session cookie, the CSRF token on mutating calls. */

export interface ApiErrorBody {
  readonly message: string;
  readonly param: string | null;
  readonly code: string | null;
}

export class ApiError extends Error {
  readonly status: number;
  readonly param: string | null;
  readonly code: string | null;
  constructor(status: number, body: ApiErrorBody) {
    super(body.message);
    this.status = status;
    this.param = body.param;
    this.code = body.code;
  }
}

/** Held in page memory only: never in storage, gone on reload (the page asks again). */
let csrfToken: string | null = null;
export const setCsrf = (token: string | null): void => {
  csrfToken = token;
};

/** Called when a session ends under the page (expired, rotated key): back to sign-in. */
let onSignedOut: () => void = () => undefined;
export const whenSignedOut = (listener: () => void): void => {
  onSignedOut = listener;
};

function errorOf(status: number, body: unknown): ApiError {
  const error = typeof body === 'object' && body !== null ? (body as { error?: Partial<ApiErrorBody> }).error : undefined;
  return new ApiError(status, {
    message: typeof error?.message === 'string' ? error.message : `The server answered ${status}.`,
    param: typeof error?.param === 'string' ? error.param : null,
    code: typeof error?.code === 'string' ? error.code : null,
  });
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let response: Response;
  try {
    response = await fetch(`/console/api/${path}`, { method, headers, credentials: 'same-origin', body: body === undefined ? null : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { message: 'The gateway did not answer. Check your connection and try again.', param: null, code: null });
  }
  const parsed: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    const error = errorOf(response.status, parsed);
    if (response.status === 401 && error.code === 'console_session_required') onSignedOut();
    throw error;
  }
  return parsed as T;
}
