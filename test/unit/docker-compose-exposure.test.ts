import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

// docker-compose.yml is safe by default (issue 14, item 17), checked on the parsed file (no Docker
// here): only the gateway is published on every interface; Prometheus and Grafana listen on this
// machine only; Grafana has no default password and the demo key no published secret (compose
// refuses to start until they are set).

type Json = Record<string, unknown>;
const compose = parse(readFileSync(fileURLToPath(new URL('../../docker-compose.yml', import.meta.url)), 'utf8')) as Json;
const services = compose.services as Record<string, Json>;

/** The host address of a short-syntax port mapping (`[host_ip:]host_port:container_port`); undefined: every interface. */
function hostAddress(mapping: string): string | undefined {
  const parts = mapping.split(':');
  return parts.length === 3 ? parts[0] : undefined;
}

/** `${VAR:?message}`: compose stops with the message when VAR is unset or empty. */
const REQUIRED = /^\$\{[A-Z_]+:\?[^}]+\}$/;

describe('docker-compose.yml exposure', () => {
  it('publishes Prometheus and Grafana on 127.0.0.1 only, Redis not at all', () => {
    for (const name of ['prometheus', 'grafana']) {
      const ports = services[name]?.ports as string[];
      expect(ports.length).toBeGreaterThan(0);
      for (const mapping of ports) expect({ name, host: hostAddress(mapping) }).toEqual({ name, host: '127.0.0.1' });
    }
    expect(services.redis?.ports).toBeUndefined();
    // Nothing but the gateway on every interface.
    const everywhere = Object.entries(services).filter(([, service]) => ((service.ports as string[] | undefined) ?? []).some((m) => hostAddress(m) === undefined));
    expect(everywhere.map(([name]) => name)).toEqual(['tollgate']);
  });

  it('requires a Grafana admin password and a demo key secret of the operator’s own (no published default)', () => {
    const grafana = services.grafana?.environment as Json;
    expect(grafana.GF_SECURITY_ADMIN_PASSWORD).toMatch(REQUIRED);
    expect(grafana.GF_SECURITY_ADMIN_PASSWORD).toContain('GRAFANA_ADMIN_PASSWORD:?');
    const tollgate = services.tollgate?.environment as Json;
    expect(tollgate.TOLLGATE_DEMO_KEY).toMatch(REQUIRED);
    expect(JSON.stringify(compose)).not.toContain('tg-demo-key-change-me');
  });
});
