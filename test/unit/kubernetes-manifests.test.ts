// deploy/kubernetes/ validates against the Kubernetes API schemas (kubernetes-models, offline) and
// the Prometheus operator's ServiceMonitor schema; its parts fit together (selectors, ports,
// probes, drain), and its ConfigMap is a valid tollgate config file.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { parseConfigText, validateConfig } from '../../src/config/load.js';

const DIR = 'deploy/kubernetes';

interface Model {
  validate(): void;
}
type Json = Record<string, unknown>;

/** The kinds the manifests may hold, by apiVersion/kind. */
const MODELS: Record<string, (data: Json) => Model> = {
  'v1/ConfigMap': (d) => new ConfigMap(d as never),
  'v1/Secret': (d) => new Secret(d as never),
  'v1/Service': (d) => new Service(d as never),
  'apps/v1/Deployment': (d) => new Deployment(d as never),
  'autoscaling/v2/HorizontalPodAutoscaler': (d) => new HorizontalPodAutoscaler(d as never),
  'policy/v1/PodDisruptionBudget': (d) => new PodDisruptionBudget(d as never),
  'monitoring.coreos.com/v1/ServiceMonitor': (d) => new ServiceMonitor(d as never),
};

function manifests(): { file: string; doc: Json }[] {
  return readdirSync(DIR)
    .filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml')
    .flatMap((file) => parseAllDocuments(readFileSync(join(DIR, file), 'utf8')).map((doc) => ({ file, doc: doc.toJSON() as Json })));
}

function byKind(kind: string): Json {
  const found = manifests().find(({ doc }) => doc.kind === kind);
  if (!found) throw new Error(`no ${kind} in ${DIR}`);
  return found.doc;
}

/** The config file the ConfigMap mounts. */
function configFileText(): string {
  const data = byKind('ConfigMap').data as Record<string, string>;
  return data['tollgate.yaml'] ?? '';
}

/** A value at a dotted path ("spec.template.spec"), for reading manifests without casts everywhere. */
function at(value: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((node, key) => (typeof node === 'object' && node !== null ? (node as Json)[key] : undefined), value);
}

describe('deploy/kubernetes', () => {
  it('every manifest validates against its Kubernetes schema', () => {
    const docs = manifests();
    expect(docs.map(({ doc }) => doc.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Secret', 'Service', 'ServiceMonitor']);
    for (const { file, doc } of docs) {
      const model = MODELS[`${String(doc.apiVersion)}/${String(doc.kind)}`];
      expect(model, `${file}: unexpected ${String(doc.apiVersion)} ${String(doc.kind)}`).toBeDefined();
      expect(() => model?.(doc).validate(), file).not.toThrow();
    }
  });

  it('rejects a manifest that breaks its schema (the validation is real)', () => {
    const deployment = structuredClone(byKind('Deployment'));
    (at(deployment, 'spec') as Json).replicas = 'three';
    expect(() => new Deployment(deployment as never).validate()).toThrow(/replicas/);
  });

  it('kustomization.yaml applies every manifest but the Secret example', () => {
    const kustomization = parseAllDocuments(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8'))[0]?.toJSON() as Json;
    const files = new Set(manifests().map(({ file }) => file));
    files.delete('secret.example.yaml');
    expect(new Set(kustomization.resources as string[])).toEqual(files);
  });

  it('the Deployment runs several non-root replicas on a read-only root, probed on /readyz and /healthz, draining on SIGTERM', () => {
    const deployment = byKind('Deployment');
    expect(at(deployment, 'spec.replicas')).toBeGreaterThan(1);
    const pod = at(deployment, 'spec.template.spec') as Json;
    const [container] = pod.containers as Json[];
    expect(at(pod, 'securityContext.runAsNonRoot')).toBe(true);
    expect(at(container, 'securityContext.readOnlyRootFilesystem')).toBe(true);
    expect(at(container, 'securityContext.allowPrivilegeEscalation')).toBe(false);
    expect(at(container, 'readinessProbe.httpGet.path')).toBe('/readyz');
    expect(at(container, 'livenessProbe.httpGet.path')).toBe('/healthz');
    expect(at(container, 'lifecycle.preStop.exec.command')).toEqual(['sleep', '5']);
    expect(at(container, 'resources.requests.cpu')).toBeDefined();
    expect(at(container, 'resources.limits.memory')).toBeDefined();
    // The pod outlives the preStop sleep plus tollgate's own drain (server.shutdown_grace_ms).
    const secret = at(byKind('Secret'), 'stringData') as Record<string, string>;
    const config = validateConfig(parseConfigText(configFileText(), secret, 'configmap'), 'configmap');
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(5 + config.server.shutdown_grace_ms / 1000);
    // Credentials come from the Secret, never from the manifest.
    expect(at(container, 'envFrom')).toEqual([{ secretRef: { name: String(at(byKind('Secret'), 'metadata.name')) } }]);
    expect(JSON.stringify(at(container, 'env'))).not.toMatch(/OPENAI_API_KEY|TOLLGATE_ADMIN_TOKEN|REDIS_URL/);
  });

  it('Service, PodDisruptionBudget, ServiceMonitor and HPA point at the Deployment', () => {
    const deployment = byKind('Deployment');
    const podLabels = at(deployment, 'spec.template.metadata.labels') as Json;
    const matches = (selector: unknown) => Object.entries(selector as Json).every(([k, v]) => podLabels[k] === v);
    expect(matches(at(byKind('Service'), 'spec.selector'))).toBe(true);
    expect(matches(at(byKind('PodDisruptionBudget'), 'spec.selector.matchLabels'))).toBe(true);
    const servicePorts = (at(byKind('Service'), 'spec.ports') as Json[]).map((port) => port.name);
    const monitor = byKind('ServiceMonitor');
    expect(servicePorts).toContain(at((at(monitor, 'spec.endpoints') as Json[])[0], 'port'));
    expect(at(byKind('Service'), 'metadata.labels')).toMatchObject(at(monitor, 'spec.selector.matchLabels') as Json);
    expect(at(byKind('HorizontalPodAutoscaler'), 'spec.scaleTargetRef')).toMatchObject({ kind: 'Deployment', name: at(deployment, 'metadata.name') });
  });

  it('the ConfigMap holds a valid tollgate config file whose variables the Secret provides', () => {
    const text = configFileText();
    const secret = at(byKind('Secret'), 'stringData') as Record<string, string>;
    const config = validateConfig(parseConfigText(text, secret, 'configmap'), 'configmap');
    expect(config.keys.map((key) => key.id)).toEqual(['team-a']);
    for (const name of text.matchAll(/\$\{([A-Z0-9_]+)/g)) expect(Object.keys(secret)).toContain(name[1]);
  });
});
