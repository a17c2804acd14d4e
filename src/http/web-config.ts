import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { SecureContextOptions, SecureVersion } from 'node:tls';
import type { Logger } from '../util/logger.ts';
import { BcryptVerifier, parseBcrypt } from './auth/bcrypt.ts';
import { ConfigFile, loadYamlFile, type Mapping } from './auth/config-check.ts';
import { peerCertificate, sanValues } from './auth/peer-cert.ts';
import { ReloadingTls, type PemSource, type TlsMaterial } from './auth/tls-reload.ts';
import { TokenBucket } from './auth/token-bucket.ts';
import type { WebGuard } from './web-guard.ts';

/**
 * --web.config.file in the Prometheus exporter-toolkit format
 * (docs/web-configuration.md of prometheus/exporter-toolkit): TLS and mTLS,
 * bcrypt basic auth, response headers and a rate limit for /metrics.
 */

const TOP_KEYS = ['tls_server_config', 'http_server_config', 'basic_auth_users', 'rate_limit'] as const;
const TLS_KEYS = [
  'cert', 'key', 'client_ca', 'cert_file', 'key_file', 'client_auth_type', 'client_ca_file', 'client_allowed_sans',
  'min_version', 'max_version', 'cipher_suites', 'prefer_server_cipher_suites', 'curve_preferences',
] as const;
const HTTP_KEYS = ['http2', 'headers'] as const;
const RATE_KEYS = ['interval', 'burst'] as const;

export const CLIENT_AUTH_TYPES = [
  'NoClientCert',
  'RequestClientCert',
  'RequireAnyClientCert',
  'VerifyClientCertIfGiven',
  'RequireAndVerifyClientCert',
] as const;
export type ClientAuthType = (typeof CLIENT_AUTH_TYPES)[number];

const TLS_VERSIONS: Record<string, SecureVersion> = { TLS10: 'TLSv1', TLS11: 'TLSv1.1', TLS12: 'TLSv1.2', TLS13: 'TLSv1.3' };

// Go's names (what the toolkit format uses) to OpenSSL's, for TLS <= 1.2.
const CIPHER_SUITES: Record<string, string> = {
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
};
const CURVES: Record<string, string> = { CurveP256: 'P-256', CurveP384: 'P-384', CurveP521: 'P-521', X25519: 'X25519' };

// The toolkit allows only these response headers, with these values where it restricts them.
const HEADER_RULES: Record<string, RegExp | null> = {
  'Content-Security-Policy': null,
  'X-Frame-Options': /^(deny|sameorigin)$/i,
  'X-Content-Type-Options': /^nosniff$/i,
  'X-XSS-Protection': null,
  'Strict-Transport-Security': null,
};

export interface WebConfig {
  tls?: {
    material: TlsMaterial;
    clientAuthType: ClientAuthType;
    allowedSans?: string[];
    base: SecureContextOptions;
  };
  headers: Record<string, string>;
  users: Map<string, string>;
  rateLimit?: { intervalMs: number; burst: number };
}

function pem(cf: ConfigFile, tls: Mapping, inlineKey: string, fileKey: string, baseDir: string): PemSource | undefined {
  const inline = cf.string(tls, inlineKey, 'tls_server_config');
  const file = cf.string(tls, fileKey, 'tls_server_config');
  if (inline !== undefined && inline !== '' && file !== undefined && file !== '') {
    throw cf.error(`tls_server_config.${inlineKey}`, `and tls_server_config.${fileKey} are both set; give one`);
  }
  if (inline !== undefined && inline !== '') return { inline };
  if (file !== undefined && file !== '') return { file: isAbsolute(file) ? file : resolve(baseDir, file) };
  return undefined;
}

/** Validates a parsed web config; relative file names resolve against the file's directory, as in the toolkit. */
export function parseWebConfig(doc: unknown, file: string): WebConfig {
  const cf = new ConfigFile(file);
  const top = cf.mapping(doc, '', TOP_KEYS);
  const baseDir = dirname(file);
  const out: WebConfig = { headers: {}, users: new Map() };

  if (top.tls_server_config !== undefined && top.tls_server_config !== null) {
    const tls = cf.mapping(top.tls_server_config, 'tls_server_config', TLS_KEYS);
    const cert = pem(cf, tls, 'cert', 'cert_file', baseDir);
    const key = pem(cf, tls, 'key', 'key_file', baseDir);
    const ca = pem(cf, tls, 'client_ca', 'client_ca_file', baseDir);
    if (cert === undefined) throw cf.error('tls_server_config.cert_file', 'is required when tls_server_config is given');
    if (key === undefined) throw cf.error('tls_server_config.key_file', 'is required when tls_server_config is given');
    const authText = cf.string(tls, 'client_auth_type', 'tls_server_config') ?? 'NoClientCert';
    if (!(CLIENT_AUTH_TYPES as readonly string[]).includes(authText)) {
      throw cf.error('tls_server_config.client_auth_type', `has unknown value ${JSON.stringify(authText)}; expected one of ${CLIENT_AUTH_TYPES.join(', ')}`);
    }
    const clientAuthType = authText as ClientAuthType;
    if (ca !== undefined && clientAuthType === 'NoClientCert') {
      throw cf.error('tls_server_config.client_ca_file', 'is set but client_auth_type is NoClientCert; set client_auth_type (RequireAndVerifyClientCert)');
    }
    if ((clientAuthType === 'VerifyClientCertIfGiven' || clientAuthType === 'RequireAndVerifyClientCert') && ca === undefined) {
      throw cf.error('tls_server_config.client_ca_file', `is required with client_auth_type ${clientAuthType}`);
    }
    const allowedSans = cf.stringList(tls, 'client_allowed_sans', 'tls_server_config');
    if (allowedSans !== undefined && clientAuthType !== 'RequireAnyClientCert' && clientAuthType !== 'RequireAndVerifyClientCert') {
      throw cf.error('tls_server_config.client_allowed_sans', 'needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert');
    }
    const version = (k: string, dflt: string): SecureVersion => {
      const v = cf.string(tls, k, 'tls_server_config') ?? dflt;
      const mapped = TLS_VERSIONS[v];
      if (mapped === undefined) throw cf.error(`tls_server_config.${k}`, `has unknown value ${JSON.stringify(v)}; expected one of ${Object.keys(TLS_VERSIONS).join(', ')}`);
      return mapped;
    };
    const base: SecureContextOptions = { minVersion: version('min_version', 'TLS12'), maxVersion: version('max_version', 'TLS13') };
    const suites = cf.stringList(tls, 'cipher_suites', 'tls_server_config');
    if (suites !== undefined && suites.length > 0) {
      base.ciphers = suites
        .map((s, i) => {
          const o = CIPHER_SUITES[s];
          if (o === undefined) throw cf.error(`tls_server_config.cipher_suites[${i}]`, `is not a supported cipher suite: ${JSON.stringify(s)}; supported: ${Object.keys(CIPHER_SUITES).join(', ')}`);
          return o;
        })
        .join(':');
    }
    base.honorCipherOrder = cf.bool(tls, 'prefer_server_cipher_suites', 'tls_server_config') ?? true;
    const curves = cf.stringList(tls, 'curve_preferences', 'tls_server_config');
    if (curves !== undefined && curves.length > 0) {
      base.ecdhCurve = curves
        .map((c, i) => {
          const o = CURVES[c];
          if (o === undefined) throw cf.error(`tls_server_config.curve_preferences[${i}]`, `is not a supported curve: ${JSON.stringify(c)}; supported: ${Object.keys(CURVES).join(', ')}`);
          return o;
        })
        .join(':');
    }
    const material: TlsMaterial = ca === undefined ? { cert, key } : { cert, key, ca };
    out.tls = allowedSans === undefined ? { material, clientAuthType, base } : { material, clientAuthType, base, allowedSans };
  }

  if (top.http_server_config !== undefined && top.http_server_config !== null) {
    const http = cf.mapping(top.http_server_config, 'http_server_config', HTTP_KEYS);
    cf.bool(http, 'http2', 'http_server_config');
    const headers = cf.mapping(http.headers, 'http_server_config.headers', Object.keys(HEADER_RULES));
    for (const name of Object.keys(headers)) {
      const value = cf.string(headers, name, 'http_server_config.headers');
      if (value === undefined || value === '') continue;
      const rule = HEADER_RULES[name];
      if (rule !== null && rule !== undefined && !rule.test(value)) {
        throw cf.error(`http_server_config.headers.${name}`, `has invalid value ${JSON.stringify(value)}`);
      }
       
      if (/[\r\n\u0000]/.test(value)) throw cf.error(`http_server_config.headers.${name}`, 'must not contain line breaks');
      out.headers[name] = value;
    }
  }

  const users = cf.mapping(top.basic_auth_users, 'basic_auth_users', null);
  for (const [user, hash] of Object.entries(users)) {
    if (typeof hash !== 'string' || parseBcrypt(hash) === null) {
      throw cf.error(`basic_auth_users.${user}`, 'is not a bcrypt hash ($2a$/$2b$/$2y$, cost 04-31); make one with: htpasswd -nBC 10 "" | tr -d \':\\n\'');
    }
    if (user.includes(':')) throw cf.error(`basic_auth_users.${user}`, 'user names must not contain ":"');
    out.users.set(user, hash);
  }

  if (top.rate_limit !== undefined && top.rate_limit !== null) {
    const rl = cf.mapping(top.rate_limit, 'rate_limit', RATE_KEYS);
    const intervalMs = cf.duration(rl, 'interval', 'rate_limit') ?? 0;
    const burst = cf.int(rl, 'burst', 'rate_limit', 0, 1_000_000) ?? 0;
    if (intervalMs > 0) {
      if (burst < 1) throw cf.error('rate_limit.burst', 'must be at least 1 when rate_limit.interval is set');
      out.rateLimit = { intervalMs, burst };
    }
  }
  return out;
}

function answer(res: ServerResponse, headers: Record<string, string>, status: number, text: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...headers, ...extra, 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(text + '\n');
}

function basicCredentials(req: IncomingMessage): { user: string; password: string } | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Basic[ ]+([A-Za-z0-9+/=]{1,8192})[ ]*$/i.exec(h);
  if (m === null) return null;
  const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Builds the guard for a parsed config (exported for tests that build configs in memory). */
export function createWebGuard(config: WebConfig, logger: Logger): WebGuard {
  // bcrypt runs in a worker thread, bounded; successes are cached (issue 12, finding 9).
  const verifier = new BcryptVerifier();
  const bucket = config.rateLimit === undefined ? undefined : new TokenBucket(config.rateLimit.intervalMs, config.rateLimit.burst);
  const headers = Object.freeze({ ...config.headers });
  // Unknown users are checked against a real hash so that timing does not tell which users exist.
  const decoyHash = config.users.values().next().value;
  const tls = config.tls;
  const reloader = tls === undefined ? undefined : new ReloadingTls(tls.material, tls.base, logger);
  // Fail at start-up, naming the file, rather than on the first scrape.
  const initial = reloader?.options();

  return {
    headers,
    createServer(handler) {
      if (tls === undefined || reloader === undefined || initial === undefined) return createHttpServer(handler);
      const type = tls.clientAuthType;
      const server = createHttpsServer(
        {
          ...initial,
          requestCert: type !== 'NoClientCert',
          rejectUnauthorized: type === 'RequireAndVerifyClientCert',
        },
        handler,
      );
      reloader.attach(server);
      return server;
    },
    check(req, res) {
      if (bucket !== undefined && !bucket.take()) {
        answer(res, headers, 429, 'Too Many Requests', { 'Retry-After': String(Math.max(1, Math.ceil(bucket.waitMs() / 1000))) });
        return false;
      }
      if (tls !== undefined && tls.clientAuthType !== 'NoClientCert' && tls.clientAuthType !== 'RequestClientCert') {
        const peer = peerCertificate(req);
        const needCert = tls.clientAuthType === 'RequireAnyClientCert' || tls.clientAuthType === 'RequireAndVerifyClientCert';
        if ((peer === null && needCert) || (peer !== null && tls.clientAuthType !== 'RequireAnyClientCert' && !peer.authorized)) {
          answer(res, headers, 403, 'Forbidden: client certificate missing or not trusted');
          return false;
        }
        if (tls.allowedSans !== undefined) {
          const values = peer === null ? [] : sanValues(peer.sans);
          if (!values.some((v) => tls.allowedSans?.includes(v))) {
            answer(res, headers, 403, 'Forbidden: client certificate SAN not allowed');
            return false;
          }
        }
      }
      if (config.users.size === 0) return true;
      const unauthorized = (): false => {
        answer(res, headers, 401, 'Unauthorized', { 'WWW-Authenticate': 'Basic realm="virt-exporter", charset="UTF-8"' });
        return false;
      };
      const creds = basicCredentials(req);
      if (creds === null) return unauthorized();
      const hash = config.users.get(creds.user);
      // A known good credential: answered at once, no hashing.
      if (hash !== undefined && verifier.cached(creds.user, creds.password, hash)) return true;
      // Unknown users are checked against a real hash so that timing does not tell which users exist.
      const against = hash ?? decoyHash;
      if (against === undefined) return unauthorized();
      return verifier.verify(creds.user, creds.password, against).then(
        (outcome) => {
          if (outcome === 'ok' && hash !== undefined) return true;
          if (outcome === 'busy') {
            answer(res, headers, 429, 'Too Many Requests: too many password checks in progress', { 'Retry-After': '1' });
            return false;
          }
          return unauthorized();
        },
        (err: unknown) => {
          logger.error('basic auth verification failed', { err });
          answer(res, headers, 500, 'Internal Server Error');
          return false;
        },
      );
    },
    close() {
      // Certificate changes are found by a stat per connection, not a watcher; the bcrypt workers end.
      void verifier.close();
    },
  };
}

/** Loads --web.config.file; rejects with VIRT_ERR_CONFIG naming the file and the bad key. */
export async function loadWebGuard(file: string, logger: Logger): Promise<WebGuard> {
  const doc = await loadYamlFile(file);
  const config = parseWebConfig(doc, file);
  logger.info('loaded web config', {
    file,
    tls: config.tls !== undefined,
    client_auth_type: config.tls?.clientAuthType,
    basic_auth_users: config.users.size,
    rate_limit: config.rateLimit !== undefined,
  });
  return createWebGuard(config, logger);
}
