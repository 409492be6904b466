import { hash } from 'node:crypto';
import { BlockList, isIP } from 'node:net';

/**
 * Secrets anyone can read (the demo key of config/tollgate.yaml, printed in the README): a key with
 * one of them works only from the gateway's own machine, so `npm start` followed by a curl on the
 * same machine works, and a fresh gateway listening on every interface does not hand its upstream
 * credential to the network. The check is by SHA-256, so `key_sha256` entries are caught too.
 */
const PUBLIC_SECRETS = ['tg-demo-key-change-me'] as const;
const PUBLIC_DIGESTS: ReadonlySet<string> = new Set(PUBLIC_SECRETS.map((secret) => hash('sha256', secret, 'hex')));

/** Whether a key's secret (as its SHA-256, hex) is one of the published ones. */
export function isPublicSecret(digestHex: string): boolean {
  return PUBLIC_DIGESTS.has(digestHex.toLowerCase());
}

/** What a request needs to show where it came from: node's IncomingMessage has it. */
export interface RequestPeer {
  readonly socket: { readonly remoteAddress?: string | undefined };
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** Headers a proxy adds: a request that carries one came (or claims to come) from elsewhere. */
const FORWARDING_HEADERS = ['forwarded', 'x-forwarded-for', 'x-real-ip'] as const;

/**
 * Sent from this machine: the connection's peer is a loopback address and no proxy relayed it. The
 * socket's own address is used, not `trust_proxy`'s reading of the headers, which a client can write.
 */
export function isLocalRequest(peer: RequestPeer | undefined): boolean {
  const address = peer?.socket.remoteAddress;
  if (address === undefined) return false;
  const family = isIP(address);
  if (family === 0 || !LOOPBACK.check(address, family === 4 ? 'ipv4' : 'ipv6')) return false;
  return FORWARDING_HEADERS.every((name) => peer?.headers[name] === undefined);
}
