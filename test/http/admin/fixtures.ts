import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { stringify as toYaml } from 'yaml';
import type { Driver } from '../../../src/drivers/driver.ts';
import type { DomainInfo, DomainRef, DomainState } from '../../../src/drivers/types.ts';
import { tokenDigest } from '../../../src/http/admin/auth.ts';
import { startAdminServer, type AdminServer } from '../../../src/http/admin/server.ts';
import { silentLogger } from '../../../src/util/logger.ts';
import { connectionFor, type Connection } from '../../../src/virt/connection.ts';
import { VirtError } from '../../../src/virt/errors.ts';
import { parseUri } from '../../../src/virt/uri.ts';

/** Shared helpers for the admin and web-config tests: temp dirs, certificates, a recording driver, an HTTP client. */

export async function tempDir(prefix = 'virt-admin-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

function openssl(cwd: string, args: string[]): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error('openssl is required by these tests (Debian package openssl) but was not found on PATH');
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString() ?? e.message}`);
  }
}

export interface CertSet {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate with the same SAN, signed by a CA the server does not trust. */
  rogueCert: string;
  rogueKey: string;
  clientSan: string;
}

function issue(dir: string, name: string, ca: string, subject: string, ext: string): void {
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
  writeFileSync(join(dir, `${name}.ext`), ext + '\n');
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
}

/** A CA, a server certificate for 127.0.0.1/localhost, a trusted client and a rogue client certificate. */
export function makeCerts(dir: string, serverName = 'server'): CertSet {
  const newCa = (name: string, cn: string): void =>
    openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${cn}`]);
  newCa('ca', 'virt-exporter test CA');
  newCa('rogue-ca', 'untrusted test CA');
  const san = 'DNS:ops.example.test';
  issue(dir, serverName, 'ca', '/CN=localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth');
  issue(dir, 'client', 'ca', '/CN=ops', `subjectAltName=${san}\nextendedKeyUsage=clientAuth`);
  issue(dir, 'rogue', 'rogue-ca', '/CN=ops', `subjectAltName=${san}\nextendedKeyUsage=clientAuth`);
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    serverCert: join(dir, `${serverName}.crt`),
    serverKey: join(dir, `${serverName}.key`),
    clientCert: join(dir, 'client.crt'),
    clientKey: join(dir, 'client.key'),
    rogueCert: join(dir, 'rogue.crt'),
    rogueKey: join(dir, 'rogue.key'),
    clientSan: san,
  };
}

export interface FakeDomain {
  ref: DomainRef;
  state: DomainState;
}

/**
 * A small in-test driver: it does what it is told without state rules, and
 * records every state-changing call, so tests can prove nothing was changed.
 * `hold` makes operations wait until released (for the in-flight gate).
 */
export function recordingDriver(): { driver: Driver; calls: string[]; domains: Map<string, FakeDomain>; hold: { promise: Promise<void> | null } } {
  const domains = new Map<string, FakeDomain>();
  const add = (name: string, uuid: string, state: DomainState): void => {
    domains.set(uuid, { ref: { name, uuid, id: state === 'shutoff' ? null : domains.size + 1 }, state });
  };
  add('web-1', '11111111-2222-4333-8444-555555555501', 'running');
  add('db-1', '11111111-2222-4333-8444-555555555502', 'paused');
  add('old-1', '11111111-2222-4333-8444-555555555503', 'shutoff');
  const calls: string[] = [];
  const hold: { promise: Promise<void> | null } = { promise: null };
  const find = (key: string): FakeDomain => {
    for (const d of domains.values()) if (d.ref.uuid === key || d.ref.name === key) return d;
    throw new VirtError('VIRT_ERR_NO_DOMAIN', `no domain ${key}`);
  };
  const write = (op: string, state: DomainState | null) => async (key: string): Promise<void> => {
    const d = find(key);
    calls.push(`${op} ${d.ref.name}`);
    if (hold.promise !== null) await hold.promise;
    if (state !== null) d.state = state;
  };
  const info = (d: FakeDomain): DomainInfo => ({ ...d.ref, state: d.state, maxMemoryBytes: 1 << 30, memoryBytes: 1 << 29, vcpus: 1, cpuTimeSeconds: 0 });
  const driver: Driver = {
    name: 'recording',
    listDomains: () => Promise.resolve([...domains.values()].map((d) => ({ ...d.ref }))),
    lookupDomain: (key) => Promise.resolve({ ...find(key).ref }),
    domainInfo: (key) => Promise.resolve(info(find(key))),
    domainDefinition: (key) => Promise.resolve({ name: find(key).ref.name }),
    define: (def) => {
      const name = (def as { name?: unknown }).name;
      if (typeof name !== 'string') return Promise.reject(new VirtError('VIRT_ERR_XML_ERROR', 'definition needs a name'));
      calls.push(`define ${name}`);
      const uuid = '11111111-2222-4333-8444-5555555555' + String(10 + domains.size);
      add(name, uuid, 'shutoff');
      return Promise.resolve({ name, uuid, id: null });
    },
    undefine: async (key) => {
      const d = find(key);
      calls.push(`undefine ${d.ref.name}`);
      if (hold.promise !== null) await hold.promise;
      domains.delete(d.ref.uuid);
    },
    start: write('start', 'running'),
    shutdown: write('shutdown', 'shutoff'),
    reboot: write('reboot', null),
    destroy: write('destroy', 'shutoff'),
    suspend: write('suspend', 'paused'),
    resume: write('resume', 'running'),
    save: async (key, file) => {
      const d = find(key);
      calls.push(`save ${d.ref.name} ${file}`);
      await writeFile(file, d.ref.uuid);
      d.state = 'shutoff';
    },
    restore: async (file) => {
      const uuid = (await readFile(file, 'utf8')).trim();
      const d = find(uuid);
      calls.push(`restore ${d.ref.name}`);
      d.state = 'running';
      return { ...d.ref };
    },
  };
  return { driver, calls, domains, hold };
}

export function recordingConnection(driver: Driver): Connection {
  return connectionFor(parseUri('test:///default'), driver, false);
}

export const TOKENS = {
  viewer: 'viewer-token-0123456789abcdef0123456789abcdef',
  operator: 'operator-token-0123456789abcdef0123456789abcd',
  admin: 'admin-token-0123456789abcdef0123456789abcdef01',
} as const;

export interface AdminFixture {
  server: AdminServer;
  url: string;
  dir: string;
  auditFile: string;
  saveDir: string;
  registry: Registry;
  close(): Promise<void>;
}

/** Writes an admin config (tokens for each role, audit log, save dir) plus `extra`, and starts the server. */
export async function startAdmin(opts: {
  connection: Connection;
  dir: string;
  extra?: Record<string, unknown>;
  settings?: Record<string, string | number | boolean>;
  tls?: boolean;
  operationTimeoutMs?: number;
}): Promise<AdminFixture> {
  const auditFile = join(opts.dir, 'audit.log');
  const saveDir = join(opts.dir, 'saves');
  mkdirSync(saveDir, { recursive: true });
  const config = {
    tokens: (Object.keys(TOKENS) as (keyof typeof TOKENS)[]).map((role) => ({ name: `${role}-bot`, role, sha256: tokenDigest(TOKENS[role]).toString('hex') })),
    rate_limit: { interval: '1ms', burst: 100000 },
    audit_log: auditFile,
    save_directory: saveDir,
    ...opts.extra,
  };
  const configFile = join(opts.dir, 'admin.yml');
  await writeFile(configFile, toYaml(config));
  const registry = new Registry();
  const server = await startAdminServer({
    connection: opts.connection,
    settings: {
      'admin.listen-address': '127.0.0.1:0',
      'admin.config.file': configFile,
      'admin.insecure-loopback': opts.tls !== true,
      ...opts.settings,
    },
    logger: silentLogger,
    registry,
    ...(opts.operationTimeoutMs === undefined ? {} : { operationTimeoutMs: opts.operationTimeoutMs }),
  });
  const scheme = server.tls ? 'https' : 'http';
  return { server, url: `${scheme}://127.0.0.1:${server.port}`, dir: opts.dir, auditFile, saveDir, registry, close: () => server.close() };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: unknown;
}

export interface RequestOptions {
  method?: string;
  token?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  ca?: string;
  cert?: string;
  key?: string;
  /** Give up after this long without a reply (default 20 s). */
  timeoutMs?: number;
}

/** One request with a fresh connection (no keep-alive), for independence between cases. */
export function call(url: string, opts: RequestOptions = {}): Promise<Reply> {
  const u = new URL(url);
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined && headers['content-type'] === undefined) headers['content-type'] = 'application/json';
  const tls = u.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const reqOpts = {
      method: opts.method ?? 'GET',
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      headers,
      agent: false as const,
      ...(tls ? { ca: opts.ca, cert: opts.cert, key: opts.key, servername: 'localhost' } : {}),
    };
    const req = (tls ? httpsRequest : httpRequest)(reqOpts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text === '' ? undefined : JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    const timeout = opts.timeoutMs ?? 20_000;
    req.setTimeout(timeout, () => req.destroy(new Error(`request timed out (${timeout / 1000} s)`)));
    req.end(opts.body);
  });
}

export async function auditLines(file: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(file, 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** POST to the admin API as the admin role, with an optional JSON body. */
export function adminPost(baseUrl: string, path: string, body?: unknown): Promise<Reply> {
  return call(baseUrl + path, { method: 'POST', token: TOKENS.admin, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
}

/** A domain's state as the driver reports it, 'undefined' when it has no definition. */
export async function domainState(conn: { domainInfo(name: string): Promise<{ state: string }> }, name: string): Promise<string> {
  try {
    return (await conn.domainInfo(name)).state;
  } catch (err) {
    if ((err as { code?: string }).code === 'VIRT_ERR_NO_DOMAIN') return 'undefined';
    throw err;
  }
}
