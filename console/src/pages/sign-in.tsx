import { useState } from 'preact/hooks';
import { api, ApiError, setCsrf } from '../api.js';
import type { SessionInfo } from '../types.js';

/** Sign in with the admin token or with one's own key; neither is kept by the page. */
export function SignIn({ ways, onSignedIn }: { ways: readonly string[]; onSignedIn: (session: SessionInfo) => void }) {
  const [kind, setKind] = useState(ways.includes('admin_token') ? 'admin_token' : 'key');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const field = form.elements.namedItem('secret') as HTMLInputElement;
    setBusy(true);
    setError(null);
    try {
      const session = await api<SessionInfo>('POST', 'session', { [kind]: field.value });
      field.value = '';
      setCsrf(session.csrf_token);
      onSignedIn(session);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="narrow">
      <h1>Sign in to tollgate</h1>
      <form onSubmit={submit}>
        <fieldset>
          <legend>Sign in with</legend>
          {ways.includes('admin_token') && (
            <label class="choice">
              <input type="radio" name="kind" value="admin_token" checked={kind === 'admin_token'} onChange={() => setKind('admin_token')} /> the admin token
            </label>
          )}
          {ways.includes('key') && (
            <label class="choice">
              <input type="radio" name="kind" value="key" checked={kind === 'key'} onChange={() => setKind('key')} /> my tollgate key
            </label>
          )}
        </fieldset>
        <div class="field">
          <label for="secret">{kind === 'admin_token' ? 'Admin token' : 'Your tollgate key'}</label>
          <input id="secret" name="secret" type="password" autoComplete="off" required aria-describedby={error ? 'sign-in-error' : undefined} />
        </div>
        {error && (
          <p class="error" id="sign-in-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
