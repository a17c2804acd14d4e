import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

export interface PeerCertificate {
  /** Whether the TLS layer verified it against the configured client CA. */
  authorized: boolean;
  /** Subject alternative names as "TYPE:value" (DNS, IP, email, URI), Node's spelling of TYPE normalised. */
  sans: string[];
}

function isTls(req: IncomingMessage): boolean {
  return (req.socket as Partial<TLSSocket>).encrypted === true;
}

/** The client certificate the peer presented on this request's TLS connection, if any. */
export function peerCertificate(req: IncomingMessage): PeerCertificate | null {
  if (!isTls(req)) return null;
  const socket = req.socket as TLSSocket;
  const cert = socket.getPeerCertificate();
  // An empty object means the client sent none.
  if (cert === null || typeof cert !== 'object' || Object.keys(cert).length === 0) return null;
  return { authorized: socket.authorized, sans: parseSubjectAltName(cert.subjectaltname ?? '') };
}

/**
 * Splits Node's subjectaltname text ("DNS:a, IP Address:127.0.0.1,
 * URI:spiffe://x") into "TYPE:value" items. Node JSON-quotes values that
 * contain separators, so quoted parts are decoded rather than split.
 */
export function parseSubjectAltName(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (text[i] === ' ' || text[i] === ',') i++;
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const rawType = text.slice(i, colon);
    const type = rawType === 'IP Address' ? 'IP' : rawType;
    i = colon + 1;
    let value: string;
    if (text[i] === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(i, j + 1)) as string;
      } catch {
        value = text.slice(i + 1, j);
      }
      i = j + 1;
    } else {
      const end = text.indexOf(', ', i);
      value = end < 0 ? text.slice(i) : text.slice(i, end);
      i = end < 0 ? text.length : end;
    }
    out.push(`${type}:${value}`);
  }
  return out;
}

/** The value part of each SAN (what exporter-toolkit's client_allowed_sans matches). */
export function sanValues(sans: readonly string[]): string[] {
  return sans.map((s) => s.slice(s.indexOf(':') + 1));
}
