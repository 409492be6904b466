import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { readDashboard } from '../helpers/dashboard.js';

// docker-compose's Grafana is wired correctly by construction (no Docker here): the provisioning
// files it mounts, the dashboard provider's path, the data source's address and uid, and the
// dashboard's references to it all agree.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
type Json = Record<string, unknown>;
const yamlFile = (path: string): Json => parse(readFileSync(`${ROOT}${path}`, 'utf8')) as Json;

const compose = yamlFile('docker-compose.yml');
const services = compose.services as Record<string, Json>;
const grafana = services.grafana as Json;
const mounts = new Map(
  (grafana.volumes as string[]).map((v) => {
    const [from, to] = v.split(':') as [string, string];
    return [to, from];
  }),
);
const datasources = (yamlFile('docker/grafana/provisioning/datasources/prometheus.yaml').datasources as Json[]);
const providers = (yamlFile('docker/grafana/provisioning/dashboards/tollgate.yaml').providers as Json[]);

/** Every `datasource` object referenced anywhere in the dashboard. */
function datasourceRefs(node: unknown, found: Json[] = []): Json[] {
  if (Array.isArray(node)) for (const item of node) datasourceRefs(item, found);
  else if (node !== null && typeof node === 'object') {
    for (const [key, value] of Object.entries(node as Json)) {
      if (key === 'datasource' && value !== null && typeof value === 'object') found.push(value as Json);
      else datasourceRefs(value, found);
    }
  }
  return found;
}

describe('Grafana provisioning in docker-compose', () => {
  it('mounts the provisioning directory and the dashboards where the provider looks', () => {
    expect(mounts.get('/etc/grafana/provisioning')).toBe('./docker/grafana/provisioning');
    expect(providers).toHaveLength(1);
    const path = (providers[0]?.options as Json).path as string;
    expect(mounts.get(path)).toBe('./docker/grafana/dashboards');
    const home = (grafana.environment as Json).GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH as string;
    expect(posix.dirname(home)).toBe(path);
    expect(existsSync(`${ROOT}docker/grafana/dashboards/${posix.basename(home)}`)).toBe(true);
    expect(readdirSync(`${ROOT}docker/grafana/dashboards`)).toEqual(['tollgate.json']);
  });

  it('points the data source at the compose Prometheus, at its scrape interval', () => {
    expect(datasources).toHaveLength(1);
    const source = datasources[0] as Json;
    expect(source.type).toBe('prometheus');
    const url = new URL(source.url as string);
    expect(services[url.hostname], 'a compose service of that name').toBeDefined();
    // Grafana reaches it on the compose network, at the container's port (published or not).
    expect(((services[url.hostname] as Json).ports as string[]).map((mapping) => mapping.split(':').at(-1))).toContain(url.port);
    expect(grafana.depends_on).toContain(url.hostname);
    const prometheus = yamlFile('docker/prometheus/prometheus.yml');
    expect((source.jsonData as Json).timeInterval).toBe((prometheus.global as Json).scrape_interval);
  });

  it('has every dashboard query use the provisioned data source', () => {
    const uid = (datasources[0] as Json).uid;
    const refs = datasourceRefs(readDashboard()).filter((ref) => ref.type === 'prometheus');
    expect(refs.length).toBeGreaterThan(30);
    for (const ref of refs) expect(ref.uid).toBe(uid);
  });

  it('lays out a valid dashboard: a uid, unique panel ids, every panel placed', () => {
    const dashboard = readDashboard();
    expect(dashboard.uid).toBe('tollgate-overview');
    const panels = dashboard.panels as Json[];
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of panels) expect(panel.gridPos, String(panel.title)).toMatchObject({ w: expect.any(Number), h: expect.any(Number) });
    // No two panels cover the same cell (Grafana would push one down, away from its row).
    type Grid = { x: number; y: number; w: number; h: number };
    const overlaps: string[] = [];
    panels.forEach((a, i) =>
      panels.slice(i + 1).forEach((b) => {
        const p = a.gridPos as Grid;
        const q = b.gridPos as Grid;
        if (p.x < q.x + q.w && q.x < p.x + p.w && p.y < q.y + q.h && q.y < p.y + p.h) overlaps.push(`${String(a.title)} / ${String(b.title)}`);
      }),
    );
    expect(overlaps).toEqual([]);
  });
});
