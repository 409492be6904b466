import { randomBytes, hash } from 'node:crypto';
import type { Caller } from '../auth/keys.js';
import type { Catalogue } from '../config/catalogue.js';
import { keyPolicySchema, type KeyPatch, type KeyPolicy } from '../config/key-policy.js';
import type { KeyEntry } from '../config/schema.js';
import { InvalidRequestError, KeyConflictError, KeyNotFoundError } from '../errors/errors.js';
import type { KeyBackend, StoredKey } from './backend.js';
import { patchPolicy } from './patch.js';
import type { KeyStore } from './registry.js';

/** Secrets of keys created here: a recognisable prefix (for secret scanners) and 256 random bits. */
export const SECRET_PREFIX = 'tg-';

export type KeyStatus = 'active' | 'disabled' | 'expired' | 'revoked';

/** A key as the admin API shows it: its policy and state, never its secret or digest. */
export interface KeyView extends KeyPolicy {
  readonly object: 'tollgate.key';
  readonly id: string;
  /** `config`: from the config file (read-only here); `api`: created through the admin API. */
  readonly source: 'config' | 'api';
  readonly status: KeyStatus;
  readonly key_hint: string | null;
  readonly created_at: string | null;
  readonly updated_at: string | null;
  readonly revoked_at: string | null;
}

/** PATCH: only the fields named change (config/key-policy.ts: keyPatchSchema; keys/patch.ts). */
export type { KeyPatch };

export interface KeyAdmin {
  list(): Promise<KeyView[]>;
  get(id: string): Promise<KeyView>;
  /** The Caller of a key (its live policy), for usage reports. */
  callerOf(id: string): Promise<Caller>;
  create(id: string, policy: KeyPolicy): Promise<{ view: KeyView; secret: string }>;
  update(id: string, patch: KeyPatch): Promise<KeyView>;
  revoke(id: string): Promise<KeyView>;
  rotate(id: string): Promise<{ view: KeyView; secret: string }>;
}

export interface KeyAdminOptions {
  readonly keys: KeyStore;
  readonly backend: KeyBackend;
  readonly catalogue: Catalogue;
  /** `models.unknown`: with `reject`, policies may only name catalogue models. */
  readonly unknownModels: 'reject' | 'pass_through';
  readonly clock?: () => number;
}

const POLICY_FIELDS = ['tier', 'limits', 'max_wait_ms', 'models', 'budget_usd', 'token_quota', 'expires_at', 'disabled', 'on_shutdown', 'cache', 'fair_share', 'metadata'] as const;

function policyOf(source: KeyPolicy): KeyPolicy {
  const policy: Record<string, unknown> = {};
  for (const field of POLICY_FIELDS) if (source[field] !== undefined) policy[field] = source[field];
  return policy as KeyPolicy;
}

/**
 * Models named by a policy that the catalogue does not know (when unknown models are refused):
 * the path of the first one, e.g. `models[1]` or `limits.models.gpt-5`, and a message.
 */
export function unknownPolicyModel(
  policy: { readonly models?: readonly string[] | undefined; readonly limits?: { readonly models?: Readonly<Record<string, unknown>> | undefined } | undefined },
  catalogue: Catalogue,
): { path: string; model: string } | undefined {
  const listed = policy.models ?? [];
  for (let i = 0; i < listed.length; i++) {
    const model = listed[i] as string;
    if (!catalogue.resolve(model)) return { path: `models[${i}]`, model };
  }
  for (const model of Object.keys(policy.limits?.models ?? {})) {
    if (!catalogue.resolve(model)) return { path: `limits.models.${model}`, model };
  }
  return undefined;
}

/** The policy a patch leaves, validated again as a whole (defaults applied); a 400 naming the field if not. */
function validPolicy(merged: Record<string, unknown>): KeyPolicy {
  const result = keyPolicySchema.safeParse(merged);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const param = issue?.path.map(String).join('.') || null;
  throw new InvalidRequestError(`Invalid '${param ?? 'policy'}' after the change: ${issue?.message ?? 'invalid'}.`, param, 'invalid_value');
}

export function createKeyAdmin(options: KeyAdminOptions): KeyAdmin {
  const { keys, backend, catalogue } = options;
  const clock = options.clock ?? Date.now;
  const nowIso = (): string => new Date(clock()).toISOString();

  const statusOf = (policy: KeyPolicy, revokedAt: string | undefined): KeyStatus => {
    if (revokedAt) return 'revoked';
    if (policy.disabled) return 'disabled';
    if (policy.expires_at !== undefined && clock() >= Date.parse(policy.expires_at)) return 'expired';
    return 'active';
  };
  const staticView = (entry: KeyEntry): KeyView => ({
    object: 'tollgate.key',
    id: entry.id,
    source: 'config',
    status: statusOf(entry, undefined),
    ...policyOf(entry),
    key_hint: null,
    created_at: null,
    updated_at: null,
    revoked_at: null,
  });
  const storedView = (record: StoredKey): KeyView => ({
    object: 'tollgate.key',
    id: record.id,
    source: 'api',
    status: statusOf(record, record.revoked_at),
    ...policyOf(record),
    key_hint: record.key_hint,
    created_at: record.created_at,
    updated_at: record.updated_at,
    revoked_at: record.revoked_at ?? null,
  });

  const checkModels = (policy: Parameters<typeof unknownPolicyModel>[0]): void => {
    if (options.unknownModels !== 'reject') return;
    const unknown = unknownPolicyModel(policy, catalogue);
    if (unknown) throw new InvalidRequestError(`Invalid '${unknown.path}': the model \`${unknown.model}\` is not in the catalogue.`, unknown.path, 'invalid_value');
  };
  const readOnly = (id: string): KeyConflictError =>
    new KeyConflictError(`Key \`${id}\` is defined in the config file; change it there.`, 'key_read_only', 'id');
  const revoked = (id: string): KeyConflictError => new KeyConflictError(`Key \`${id}\` is revoked.`, 'key_revoked', 'id');

  const stored = async (id: string): Promise<StoredKey> => {
    if (keys.staticEntry(id)) throw readOnly(id);
    const record = await backend.get(id);
    if (!record) throw new KeyNotFoundError(id);
    return record;
  };
  /** Read, change, compare-and-set; again when another writer came first. */
  const change = async (id: string, next: (record: StoredKey) => { record: StoredKey; liveDigest: string | undefined }): Promise<StoredKey> => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const record = await stored(id);
      const update = next(record);
      if (await backend.put(record, update.record, update.liveDigest)) {
        await announce(id);
        return update.record;
      }
    }
    throw new KeyConflictError(`Key \`${id}\` is being changed by someone else; try again.`, 'key_busy', 'id');
  };
  const announce = async (id: string): Promise<void> => {
    keys.invalidate(id);
    await backend.publish(id);
  };
  const newSecret = (): { secret: string; sha256: string; hint: string } => {
    const secret = SECRET_PREFIX + randomBytes(32).toString('base64url');
    return { secret, sha256: hash('sha256', secret, 'hex'), hint: `${SECRET_PREFIX}…${secret.slice(-4)}` };
  };

  return {
    async list() {
      const records = await backend.list();
      const views = [...keys.staticEntries.map(staticView), ...records.filter((r) => !keys.staticEntry(r.id)).map(storedView)];
      return views.sort((a, b) => a.id.localeCompare(b.id));
    },
    async get(id) {
      const entry = keys.staticEntry(id);
      if (entry) return staticView(entry);
      const record = await backend.get(id);
      if (!record) throw new KeyNotFoundError(id);
      return storedView(record);
    },
    async callerOf(id) {
      const entry = keys.staticEntry(id);
      if (entry) return keys.callerOf({ ...entry, sha256: '', key_hint: '', created_at: '', updated_at: '' });
      const record = await backend.get(id);
      if (!record) throw new KeyNotFoundError(id);
      return keys.callerOf(record);
    },
    async create(id, policy) {
      checkModels(policy);
      if (keys.staticEntry(id)) throw new KeyConflictError(`A key with id \`${id}\` exists (in the config file).`, 'key_exists', 'id');
      const { secret, sha256, hint } = newSecret();
      const now = nowIso();
      const record: StoredKey = { ...policyOf(policy), id, sha256, key_hint: hint, created_at: now, updated_at: now };
      if (!(await backend.put(undefined, record, sha256))) {
        throw new KeyConflictError(`A key with id \`${id}\` exists (ids of revoked keys are not reused).`, 'key_exists', 'id');
      }
      await announce(id);
      return { view: storedView(record), secret };
    },
    async update(id, patch) {
      // Only the models the patch names (a removed entry may name a model the catalogue dropped).
      const limited = Object.entries(patch.limits?.models ?? {}).filter(([, limits]) => limits !== null);
      checkModels({ models: patch.models ?? undefined, limits: { models: Object.fromEntries(limited) } });
      const record = await change(id, (current) => {
        if (current.revoked_at) throw revoked(id);
        const policy = validPolicy(patchPolicy(policyOf(current), patch));
        const next: Record<string, unknown> = { ...current };
        for (const field of POLICY_FIELDS) delete next[field];
        return { record: { ...(next as unknown as StoredKey), ...policy, updated_at: nowIso() }, liveDigest: current.sha256 };
      });
      return storedView(record);
    },
    async revoke(id) {
      const record = await change(id, (current) => {
        // Revoking twice changes nothing: the first revocation's time stays.
        if (current.revoked_at) return { record: current, liveDigest: undefined };
        const now = nowIso();
        return { record: { ...current, revoked_at: now, updated_at: now }, liveDigest: undefined };
      });
      return storedView(record);
    },
    async rotate(id) {
      const { secret, sha256, hint } = newSecret();
      const record = await change(id, (current) => {
        if (current.revoked_at) throw revoked(id);
        return { record: { ...current, sha256, key_hint: hint, updated_at: nowIso() }, liveDigest: sha256 };
      });
      return { view: storedView(record), secret };
    },
  };
}
