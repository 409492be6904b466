// A package registry on 127.0.0.1 for install tests, made of package-lock.json: it answers the
// metadata (packuments) of exactly the locked versions, with their integrity, so npm takes every
// tarball from its own cache (filled by `npm ci`) and the test reaches no outside registry. A
// tarball npm asks for (one missing from its cache) is answered 404: the install then fails saying so.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LockfileRegistry {
  /** http://127.0.0.1:<port>/ */
  readonly url: string;
  close(): Promise<void>;
}

interface LockEntry {
  readonly version?: string;
  readonly integrity?: string;
  readonly dependencies?: Record<string, string>;
  readonly optionalDependencies?: Record<string, string>;
  readonly peerDependencies?: Record<string, string>;
  readonly peerDependenciesMeta?: Record<string, unknown>;
  readonly bin?: Record<string, string>;
  readonly engines?: Record<string, string>;
  readonly os?: string[];
  readonly cpu?: string[];
}

type Packuments = Map<string, { versions: Record<string, Record<string, unknown>>; latest: string }>;

function packumentsOf(lockfile: string, base: () => string): Packuments {
  const lock = JSON.parse(readFileSync(lockfile, 'utf8')) as { packages: Record<string, LockEntry> };
  const packuments: Packuments = new Map();
  for (const [path, entry] of Object.entries(lock.packages)) {
    const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    if (path === '' || !entry.version || !entry.integrity) continue;
    const { version, integrity, ...rest } = entry;
    const packument = packuments.get(name) ?? { versions: {}, latest: version };
    packument.versions[version] = { name, version, ...rest, dist: { integrity, tarball: `${base()}${name}/-/${name.split('/').pop()}-${version}.tgz` } };
    packuments.set(name, packument);
  }
  return packuments;
}

export async function startLockfileRegistry(lockfile: string): Promise<LockfileRegistry> {
  let url = '';
  const packuments = packumentsOf(lockfile, () => url);
  const server = createServer((req, res) => {
    const name = decodeURIComponent((req.url ?? '/').slice(1));
    const packument = packuments.get(name);
    if (!packument) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ name, 'dist-tags': { latest: packument.latest }, versions: packument.versions }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return { url, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
