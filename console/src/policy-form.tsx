import { useState } from 'preact/hooks';
import { ApiError } from './api.js';
import type { Policy } from './types.js';

const TIERS = ['free', 'tier-1', 'tier-2', 'tier-3', 'tier-4', 'tier-5'];

type Kind = 'number' | 'text' | 'list' | 'json';
interface Field {
  /** The API's parameter path, e.g. `budget_usd.daily` (errors name it). */
  readonly name: string;
  readonly label: string;
  readonly kind: Kind;
  readonly hint?: string;
}

const FIELDS: readonly Field[] = [
  { name: 'limits.rpm', label: 'Requests per minute', kind: 'number', hint: 'blank: the tier’s figure' },
  { name: 'limits.rpd', label: 'Requests per day', kind: 'number', hint: 'blank: the tier’s figure' },
  { name: 'limits.tpm', label: 'Tokens per minute', kind: 'number', hint: 'blank: the tier’s figure' },
  { name: 'limits.models', label: 'Per-model limits (JSON)', kind: 'json', hint: 'e.g. {"gpt-4.1-nano": {"rpm": 100}}' },
  { name: 'models', label: 'Allowed models', kind: 'list', hint: 'comma-separated; blank: every model' },
  { name: 'budget_usd.daily', label: 'Daily budget (US$)', kind: 'number' },
  { name: 'budget_usd.monthly', label: 'Monthly budget (US$)', kind: 'number' },
  { name: 'budget_usd.total', label: 'Total budget (US$)', kind: 'number' },
  { name: 'token_quota.daily', label: 'Daily token quota', kind: 'number' },
  { name: 'token_quota.monthly', label: 'Monthly token quota', kind: 'number' },
  { name: 'expires_at', label: 'Expires at', kind: 'text', hint: 'ISO 8601 with a zone, e.g. 2026-12-31T00:00:00Z' },
  { name: 'cache.ttl_s', label: 'Response cache TTL (s)', kind: 'number', hint: 'blank: cache off' },
  { name: 'metadata.team', label: 'Team', kind: 'text' },
  { name: 'metadata.owner', label: 'Owner', kind: 'text' },
  { name: 'metadata.description', label: 'Description', kind: 'text' },
];

type Values = Record<string, string>;

function read(policy: Record<string, unknown>, path: string): unknown {
  return path.split('.').reduce<unknown>((value, part) => (typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[part] : undefined), policy);
}

function initialValues(policy: Policy | undefined): Values {
  const values: Values = { tier: policy?.tier ?? 'tier-1' };
  for (const field of FIELDS) {
    const value = policy ? read(policy as unknown as Record<string, unknown>, field.name) : undefined;
    values[field.name] = value === undefined || value === null ? '' : field.kind === 'list' ? (value as string[]).join(', ') : field.kind === 'json' ? JSON.stringify(value) : String(value);
  }
  return values;
}

/** A number field as typed: the API validates it (its error shows at the field). */
function parsed(field: Field, text: string): unknown {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  if (field.kind === 'number') return Number(trimmed);
  if (field.kind === 'list') return trimmed.split(',').map((s) => s.trim()).filter(Boolean);
  if (field.kind === 'json') {
    try {
      return JSON.parse(trimmed) as unknown;
    } catch {
      return trimmed;
    }
  }
  return trimmed;
}

/** The form's values as a policy: sections only when one of their fields is set; for PATCH, absent sections are null (removed). */
function policyOf(values: Values, forPatch: boolean): Record<string, unknown> {
  const policy: Record<string, unknown> = { tier: values.tier };
  const sections: Record<string, Record<string, unknown>> = {};
  for (const field of FIELDS) {
    const value = parsed(field, values[field.name] ?? '');
    const [head, tail] = field.name.split('.') as [string, string | undefined];
    if (tail === undefined) {
      if (value !== undefined) policy[head] = value;
      else if (forPatch) policy[head] = null;
      continue;
    }
    if (value !== undefined) (sections[head] ??= {})[tail] = value;
  }
  // The admin API's PATCH does not take `cache` (it is set when the key is created).
  for (const head of forPatch ? ['limits', 'budget_usd', 'token_quota', 'metadata'] : ['limits', 'budget_usd', 'token_quota', 'cache', 'metadata']) {
    if (sections[head]) policy[head] = sections[head];
    else if (forPatch) policy[head] = null;
  }
  return policy;
}

/** The field an API error names: the longest field name that starts its `param` (`models[1]` → models). */
function fieldOfParam(param: string | null): string | undefined {
  if (!param) return undefined;
  const names = ['id', 'tier', ...FIELDS.map((f) => f.name)].sort((a, b) => b.length - a.length);
  return names.find((name) => param === name || param.startsWith(`${name}.`) || param.startsWith(`${name}[`)) ?? names.find((name) => name.startsWith(`${param}.`));
}

export interface PolicyFormProps {
  readonly initial?: Policy;
  /** Create: the id is asked for. */
  readonly withId?: boolean;
  readonly readOnly?: boolean;
  readonly submitLabel: string;
  readonly onSubmit: (policy: Record<string, unknown>) => Promise<void>;
}

export function PolicyForm({ initial, withId, readOnly, submitLabel, onSubmit }: PolicyFormProps) {
  const [values, setValues] = useState<Values>(() => ({ ...initialValues(initial), id: '' }));
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState(false);
  const errorField = fieldOfParam(error?.param ?? null);
  const set = (name: string) => (event: Event) => {
    const value = (event.currentTarget as HTMLInputElement).value;
    setValues((current) => ({ ...current, [name]: value }));
  };
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setSaved(false);
    try {
      const policy = policyOf(values, !withId);
      await onSubmit(withId ? { id: values.id, ...policy } : policy);
      setSaved(true);
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, { message: String(err), param: null, code: null }));
    } finally {
      setBusy(false);
    }
  };
  const input = (name: string, label: string, hint?: string, type: 'text' | 'number' = 'text') => {
    const invalid = errorField === name;
    const describedBy = [hint ? `${fid(name)}-hint` : '', invalid ? `${fid(name)}-error` : ''].filter(Boolean).join(' ') || undefined;
    return (
      <div class={invalid ? 'field invalid' : 'field'} key={name}>
        <label for={fid(name)}>{label}</label>
         <input id={fid(name)} name={name} type="text" inputMode={type === 'number' ? 'decimal' : 'text'} value={values[name] ?? ''} onInput={set(name)} readOnly={readOnly} aria-invalid={invalid} aria-describedby={describedBy} />
        {hint && <small id={`${fid(name)}-hint`}>{hint}</small>}
        {invalid && error && (
          <p class="field-error" id={`${fid(name)}-error`} role="alert">
            {error.message}
          </p>
        )}
      </div>
    );
  };
  return (
    <form onSubmit={submit} class="policy" noValidate>
      {withId && input('id', 'Key id', 'letters, digits and . _ : -')}
      <div class={errorField === 'tier' ? 'field invalid' : 'field'}>
        <label for="f-tier">Tier</label>
        <select id="f-tier" value={values.tier} onChange={set('tier')} disabled={readOnly}>
          {TIERS.map((tier) => (
            <option value={tier} key={tier}>
              {tier}
            </option>
          ))}
        </select>
      </div>
      {FIELDS.filter((field) => withId || !field.name.startsWith('cache.')).map((field) => input(field.name, field.label, field.hint, field.kind === 'number' ? 'number' : 'text'))}
      {error && !errorField && <p class="error" role="alert">{error.message}</p>}
      {!readOnly && (
        <div class="row">
          <button type="submit" disabled={busy}>
            {busy ? 'Saving…' : submitLabel}
          </button>
          <span role="status">{saved && !withId ? 'Saved.' : ''}</span>
        </div>
      )}
    </form>
  );
}

const fid = (name: string): string => `f-${name.replace(/[^A-Za-z0-9]/g, '-')}`;
