import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { PolicyForm } from '../policy-form.js';
import type { KeyView } from '../types.js';
import { SecretOnce } from '../ui.js';

export function CreatePage() {
  const [created, setCreated] = useState<{ id: string; secret: string } | null>(null);
  if (created) {
    return (
      <>
        <h1>Key {created.id} created</h1>
        <SecretOnce secret={created.secret} onDone={() => (location.hash = `#/keys/${encodeURIComponent(created.id)}`)} />
      </>
    );
  }
  return (
    <>
      <h1>Create a key</h1>
      <PolicyForm
        withId
        submitLabel="Create"
        onSubmit={async (policy) => {
          const answer = await api<KeyView & { key: string }>('POST', 'admin/keys', policy);
          setCreated({ id: answer.id, secret: answer.key });
        }}
      />
    </>
  );
}
