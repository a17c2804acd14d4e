import { realpath, stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { SecureVersion } from 'node:tls';
import { ConfigFile, loadYamlFile, type Mapping } from '../auth/config-check.ts';
import type { PemSource, TlsMaterial } from '../auth/tls-reload.ts';
import { isRole, ROLES, type Role } from './roles.ts';
import { VirtError } from '../../virt/errors.ts';

/**
 * The admin configuration file (--admin.config.file, YAML). It holds what
 * must not be a flag: TLS material, token digests and certificate-to-role
 * mappings, plus the limits and the audit log. Unknown keys are errors.
 */
export interface TokenEntry {
  name: string;
  role: Role;
  /** SHA-256 of the token, 32 bytes. */
  digest: Buffer;
}

export interface CertificateEntry {
  name: string;
  role: Role;
  /** "DNS:host", "URI:spiffe://...", "email:a@b" or "IP:10.0.0.1", matched exactly. */
  san: string;
}

export type ClientAuth = 'none' | 'optional' | 'required';

export interface AdminConfig {
  file: string;
  tls?: { material: TlsMaterial; clientAuth: ClientAuth; minVersion: SecureVersion };
  tokens: TokenEntry[];
  certificates: CertificateEntry[];
  rateLimit: { intervalMs: number; burst: number };
  /**
   * Failed authentications: a bucket per source address (per /64 for IPv6)
   * and one global budget shared by every source. Defaults: the rate_limit
   * for each address, ten times it for the global budget.
   */
  failedAuth: { perAddress: { intervalMs: number; burst: number }; global: { intervalMs: number; burst: number } };
  maxInFlightPerDomain: number;
  auditLog: string;
  /** Real path of the directory save/restore files are confined to; undefined disables them. */
  saveDirectory?: string;
}

const TOP = ['tls', 'tokens', 'client_certificates', 'rate_limit', 'failed_auth', 'max_in_flight_per_domain', 'audit_log', 'save_directory'] as const;
const FAILED = ['interval', 'burst', 'global_interval', 'global_burst'] as const;
const TLS = ['cert_file', 'key_file', 'client_ca_file', 'client_auth', 'min_version'] as const;
const TOKEN = ['name', 'role', 'sha256'] as const;
const CERT = ['name', 'role', 'san'] as const;
const RATE = ['interval', 'burst'] as const;
const CLIENT_AUTH: readonly ClientAuth[] = ['none', 'optional', 'required'];
const VERSIONS: Record<string, SecureVersion> = { TLS12: 'TLSv1.2', TLS13: 'TLSv1.3' };

export const PRINCIPAL_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$/;
const SAN_RE = /^(DNS|IP|email|URI):\S{1,255}$/;
export const DEFAULT_RATE_LIMIT = { intervalMs: 200, burst: 20 };

function within(baseDir: string, p: string): string {
  return isAbsolute(p) ? p : resolve(baseDir, p);
}

export function parseAdminConfig(doc: unknown, file: string): Omit<AdminConfig, 'saveDirectory'> & { saveDirectory?: string } {
  const cf = new ConfigFile(file);
  const baseDir = dirname(file);
  const top = cf.mapping(doc, '', TOP);
  const out: AdminConfig = {
    file,
    tokens: [],
    certificates: [],
    rateLimit: { ...DEFAULT_RATE_LIMIT },
    failedAuth: { perAddress: { ...DEFAULT_RATE_LIMIT }, global: { ...DEFAULT_RATE_LIMIT } },
    maxInFlightPerDomain: cf.int(top, 'max_in_flight_per_domain', '', 1, 64) ?? 1,
    auditLog: within(baseDir, cf.requiredString(top, 'audit_log', '')),
  };

  if (top.tls !== undefined && top.tls !== null) {
    const tls = cf.mapping(top.tls, 'tls', TLS);
    const file = (k: string): PemSource => ({ file: within(baseDir, cf.requiredString(tls, k, 'tls')) });
    const caFile = cf.string(tls, 'client_ca_file', 'tls');
    const material: TlsMaterial = { cert: file('cert_file'), key: file('key_file') };
    if (caFile !== undefined && caFile !== '') material.ca = { file: within(baseDir, caFile) };
    const authText = cf.string(tls, 'client_auth', 'tls') ?? (material.ca === undefined ? 'none' : 'optional');
    if (!(CLIENT_AUTH as readonly string[]).includes(authText)) {
      throw cf.error('tls.client_auth', `has unknown value ${JSON.stringify(authText)}; expected one of ${CLIENT_AUTH.join(', ')}`);
    }
    const clientAuth = authText as ClientAuth;
    if (clientAuth !== 'none' && material.ca === undefined) throw cf.error('tls.client_ca_file', `is required with client_auth ${clientAuth}`);
    if (clientAuth === 'none' && material.ca !== undefined) throw cf.error('tls.client_auth', 'is none but tls.client_ca_file is set; use optional or required');
    const v = cf.string(tls, 'min_version', 'tls') ?? 'TLS12';
    const minVersion = VERSIONS[v];
    if (minVersion === undefined) throw cf.error('tls.min_version', `has unknown value ${JSON.stringify(v)}; expected TLS12 or TLS13`);
    out.tls = { material, clientAuth, minVersion };
  }

  const names = new Set<string>();
  const uniqueName = (name: string, path: string): void => {
    if (!PRINCIPAL_NAME_RE.test(name)) throw cf.error(path, `must match ${PRINCIPAL_NAME_RE.source}, got ${JSON.stringify(name)}`);
    if (names.has(name)) throw cf.error(path, `duplicates the principal name ${JSON.stringify(name)}`);
    names.add(name);
  };
  const role = (m: Mapping, path: string): Role => {
    const r = cf.requiredString(m, 'role', path);
    if (!isRole(r)) throw cf.error(`${path}.role`, `has unknown value ${JSON.stringify(r)}; expected one of ${ROLES.join(', ')}`);
    return r;
  };

  const digests = new Set<string>();
  cf.list(top, 'tokens', '').forEach((item, i) => {
    const path = `tokens[${i}]`;
    const m = cf.mapping(item, path, TOKEN);
    const name = cf.requiredString(m, 'name', path);
    uniqueName(name, `${path}.name`);
    const hex = cf.requiredString(m, 'sha256', path).toLowerCase();
    // Never echo the value: it might be a token pasted by mistake instead of its digest.
    if (!/^[0-9a-f]{64}$/.test(hex)) throw cf.error(`${path}.sha256`, 'must be 64 hexadecimal digits (sha256sum of the token); the value is not shown');
    if (digests.has(hex)) throw cf.error(`${path}.sha256`, 'duplicates the digest of another token');
    digests.add(hex);
    out.tokens.push({ name, role: role(m, path), digest: Buffer.from(hex, 'hex') });
  });

  cf.list(top, 'client_certificates', '').forEach((item, i) => {
    const path = `client_certificates[${i}]`;
    const m = cf.mapping(item, path, CERT);
    const name = cf.requiredString(m, 'name', path);
    uniqueName(name, `${path}.name`);
    const san = cf.requiredString(m, 'san', path);
    if (!SAN_RE.test(san)) throw cf.error(`${path}.san`, `must be TYPE:value with TYPE one of DNS, IP, email, URI; got ${JSON.stringify(san)}`);
    out.certificates.push({ name, role: role(m, path), san });
  });
  if (out.certificates.length > 0 && (out.tls === undefined || out.tls.clientAuth === 'none')) {
    throw cf.error('client_certificates', 'needs tls.client_ca_file and tls.client_auth optional or required');
  }
  if (out.tokens.length === 0 && out.certificates.length === 0) {
    throw cf.error('tokens', 'is empty and so is client_certificates: nobody could use the admin endpoint');
  }

  if (top.rate_limit !== undefined && top.rate_limit !== null) {
    const rl = cf.mapping(top.rate_limit, 'rate_limit', RATE);
    const intervalMs = cf.duration(rl, 'interval', 'rate_limit') ?? DEFAULT_RATE_LIMIT.intervalMs;
    const burst = cf.int(rl, 'burst', 'rate_limit', 1, 1_000_000) ?? DEFAULT_RATE_LIMIT.burst;
    out.rateLimit = { intervalMs, burst };
  }
  const rl = out.rateLimit;
  out.failedAuth = { perAddress: { ...rl }, global: { intervalMs: Math.max(1, Math.round(rl.intervalMs / 10)), burst: Math.min(10_000_000, rl.burst * 10) } };
  if (top.failed_auth !== undefined && top.failed_auth !== null) {
    const fa = cf.mapping(top.failed_auth, 'failed_auth', FAILED);
    out.failedAuth = {
      perAddress: {
        intervalMs: cf.duration(fa, 'interval', 'failed_auth') ?? out.failedAuth.perAddress.intervalMs,
        burst: cf.int(fa, 'burst', 'failed_auth', 1, 1_000_000) ?? out.failedAuth.perAddress.burst,
      },
      global: {
        intervalMs: cf.duration(fa, 'global_interval', 'failed_auth') ?? out.failedAuth.global.intervalMs,
        burst: cf.int(fa, 'global_burst', 'failed_auth', 1, 10_000_000) ?? out.failedAuth.global.burst,
      },
    };
  }

  const save = cf.string(top, 'save_directory', '');
  if (save !== undefined && save !== '') out.saveDirectory = within(baseDir, save);
  return out;
}

/** Loads and checks the admin config file; the save directory must exist (its real path is kept). */
export async function loadAdminConfig(file: string): Promise<AdminConfig> {
  const config = parseAdminConfig(await loadYamlFile(file), file);
  if (config.saveDirectory !== undefined) {
    const cf = new ConfigFile(file);
    try {
      const real = await realpath(config.saveDirectory);
      if (!(await stat(real)).isDirectory()) throw new VirtError('VIRT_ERR_CONFIG', 'not a directory');
      config.saveDirectory = real;
    } catch (err) {
      throw cf.error('save_directory', `${config.saveDirectory} is not a usable directory: ${(err as Error).message}`, err);
    }
  }
  return config;
}
