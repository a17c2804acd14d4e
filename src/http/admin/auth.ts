import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { peerCertificate } from '../auth/peer-cert.ts';
import type { CertificateEntry, TokenEntry } from './config.ts';
import type { Role } from './roles.ts';

/** Who made a request, once authenticated. `name` is from the config, never from the request. */
export interface Principal {
  name: string;
  role: Role;
  kind: 'token' | 'certificate';
}

export type AuthResult =
  | { ok: true; principal: Principal }
  | { ok: false; reason: 'missing' | 'malformed' | 'unknown-token' | 'untrusted-certificate' | 'unmapped-certificate' };

/** SHA-256 of a token: what the config stores and what requests are compared by. */
export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * Compares a presented token with a stored digest. The presented token is
 * always hashed first, so the comparison is between two 32-byte digests
 * whatever the token's length: a wrong token of the right length and one of
 * another length take the same path. `equal` is injectable so a test can
 * observe that path.
 */
export function tokenMatches(presented: string, storedDigest: Buffer, equal: (a: Buffer, b: Buffer) => boolean = timingSafeEqual): boolean {
  return equal(tokenDigest(presented), storedDigest);
}

// RFC 6750 b64token, bounded.
const BEARER_RE = /^Bearer +([A-Za-z0-9\-._~+/]{1,4096}=*) *$/;

/**
 * Authenticates a request. A presented client certificate that the CA did
 * not sign fails it. Then an Authorization header, when present, must carry
 * a known bearer token (a bad one is never rescued by a certificate);
 * otherwise a verified client certificate whose SAN is mapped to a role.
 */
export class Authenticator {
  readonly #tokens: readonly TokenEntry[];
  readonly #certs: readonly CertificateEntry[];
  readonly #equal: (a: Buffer, b: Buffer) => boolean;

  constructor(tokens: readonly TokenEntry[], certs: readonly CertificateEntry[], equal: (a: Buffer, b: Buffer) => boolean = timingSafeEqual) {
    this.#tokens = tokens;
    this.#certs = certs;
    this.#equal = equal;
  }

  authenticate(req: IncomingMessage): AuthResult {
    const cert = peerCertificate(req);
    // A certificate the CA did not sign is refused outright, token or not.
    if (cert !== null && !cert.authorized) return { ok: false, reason: 'untrusted-certificate' };
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = BEARER_RE.exec(header);
      if (m === null) return { ok: false, reason: 'malformed' };
      const digest = tokenDigest(m[1] as string);
      let found: TokenEntry | undefined;
      // Every entry is compared, no early exit: timing does not reveal which one matched.
      for (const t of this.#tokens) {
        if (this.#equal(digest, t.digest) && found === undefined) found = t;
      }
      if (found === undefined) return { ok: false, reason: 'unknown-token' };
      return { ok: true, principal: { name: found.name, role: found.role, kind: 'token' } };
    }
    if (cert === null) return { ok: false, reason: 'missing' };
    const entry = this.#certs.find((c) => cert.sans.includes(c.san));
    if (entry === undefined) return { ok: false, reason: 'unmapped-certificate' };
    return { ok: true, principal: { name: entry.name, role: entry.role, kind: 'certificate' } };
  }
}
