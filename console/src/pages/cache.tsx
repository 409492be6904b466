import { useState } from 'preact/hooks';
import { api, ApiError } from '../api.js';

export function CachePage() {
  const [keyId, setKeyId] = useState('');
  const [result, setResult] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const purge = async (path: string) => {
    setBusy(true);
    setResult(null);
    setError(null);
    try {
      const answer = await api<{ purged: number }>('DELETE', path);
      setResult(`Purged ${answer.purged} entries.`);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <h1>Response cache</h1>
      <section aria-labelledby="purge-all">
        <h2 id="purge-all">Purge everything</h2>
        <button type="button" disabled={busy} onClick={() => purge('admin/cache')}>
          Purge all entries
        </button>
      </section>
      <section aria-labelledby="purge-key">
        <h2 id="purge-key">Purge one key’s entries</h2>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void purge(`admin/cache/keys/${encodeURIComponent(keyId.trim())}`);
          }}
        >
          <div class="field">
            <label for="cache-key">Key id</label>
            <input id="cache-key" value={keyId} onInput={(e) => setKeyId(e.currentTarget.value)} required />
          </div>
          <button type="submit" disabled={busy || keyId.trim() === ''}>
            Purge this key’s entries
          </button>
        </form>
      </section>
      <p role="status">{result ?? (busy ? 'Purging…' : '')}</p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </>
  );
}
