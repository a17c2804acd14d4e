import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { copyFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import type { RequestListener, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify as toYaml } from 'yaml';
import { loadWebGuard, parseWebConfig } from '../../src/http/web-config.ts';
import type { WebGuard } from '../../src/http/web-guard.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { isVirtError } from '../../src/virt/errors.ts';
import { call, makeCerts, tempDir, type CertSet } from './admin/fixtures.ts';

function htpasswdHash(password: string): string {
  try {
    const out = execFileSync('htpasswd', ['-nbB', '-C', '5', 'x', password], { encoding: 'utf8' }).trim();
    return out.slice(out.indexOf(':') + 1);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('htpasswd is required (Debian package apache2-utils, listed in .ci/apt-packages.txt)');
    throw err;
  }
}

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // Asynchronous: the server under test runs in this very process.
    execFile('curl', ['-sS', '--max-time', '20', ...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err !== null && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error('curl is required by this test but was not found on PATH'));
        return;
      }
      resolve({ code: err === null ? 0 : Number(err.code), stdout, stderr });
    });
  });
}

/** A minimal /metrics server protected by a guard, as src/http/server.ts uses one. */
async function metricsServer(guard: WebGuard): Promise<{ server: Server; port: number; close: () => Promise<void> }> {
  const handler: RequestListener = (req, res) => {
    // check() answers later when a password must be verified (bcrypt in a worker).
    void Promise.resolve(guard.check(req, res)).then((ok) => {
      if (!ok) return;
      res.writeHead(req.url === '/metrics' ? 200 : 404, { ...guard.headers, 'Content-Type': 'text/plain; version=0.0.4' });
      res.end(req.url === '/metrics' ? 'virt_up 1\n' : 'not found\n');
    });
  };
  const server = guard.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        guard.close();
      }),
  };
}

const basic = (user: string, pw: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}` });

void describe('web config (exporter-toolkit format)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let certs: CertSet;
  let ca: string;
  const password = 'correct horse battery staple';
  let hash: string;

  before(async () => {
    ({ dir, cleanup } = await tempDir('virt-webcfg-test-'));
    await mkdir(join(dir, 'pki'));
    certs = makeCerts(join(dir, 'pki'));
    ca = await readFile(certs.caCert, 'utf8');
    hash = htpasswdHash(password);
  });
  after(async () => { await cleanup(); });

  async function guardFrom(name: string, doc: unknown): Promise<WebGuard> {
    const file = join(dir, name);
    await writeFile(file, toYaml(doc));
    return loadWebGuard(file, silentLogger);
  }

  void describe('validation', () => {
    const refuse = (doc: unknown, pattern: RegExp): void => {
      assert.throws(() => parseWebConfig(doc, '/etc/web.yml'), (e: unknown) => isVirtError(e, 'VIRT_ERR_CONFIG') && pattern.test(e.message) && e.message.includes('/etc/web.yml'));
    };
    void it('rejects unknown keys at every level, naming them', () => {
      refuse({ tls_config: {} }, /"tls_config"/);
      refuse({ tls_server_config: { cert_file: 'a', key_file: 'b', certfile: 'c' } }, /"tls_server_config\.certfile"/);
      refuse({ http_server_config: { http3: true } }, /"http_server_config\.http3"/);
      refuse({ http_server_config: { headers: { 'X-Powered-By': 'me' } } }, /"http_server_config\.headers\.X-Powered-By"/);
      refuse({ rate_limit: { interval: '1s', burst: 2, extra: 1 } }, /"rate_limit\.extra"/);
    });
    void it('rejects bad values, naming the key', () => {
      refuse({ tls_server_config: { cert_file: 'a' } }, /key_file/);
      refuse({ tls_server_config: { cert_file: 'a', cert: 'x', key_file: 'b' } }, /tls_server_config\.cert/);
      refuse({ tls_server_config: { cert_file: 'a', key_file: 'b', client_auth_type: 'Sometimes' } }, /client_auth_type.*Sometimes/);
      refuse({ tls_server_config: { cert_file: 'a', key_file: 'b', client_auth_type: 'RequireAndVerifyClientCert' } }, /client_ca_file/);
      refuse({ tls_server_config: { cert_file: 'a', key_file: 'b', client_ca_file: 'c' } }, /client_ca_file/);
      refuse({ tls_server_config: { cert_file: 'a', key_file: 'b', min_version: 'SSL3' } }, /min_version/);
      refuse({ tls_server_config: { cert_file: 'a', key_file: 'b', cipher_suites: ['TLS_RSA_WITH_RC4_128_SHA'] } }, /cipher_suites\[0\]/);
      refuse({ basic_auth_users: { alice: 'plaintext' } }, /basic_auth_users\.alice/);
      refuse({ basic_auth_users: { alice: 42 } }, /basic_auth_users\.alice/);
      refuse({ http_server_config: { headers: { 'X-Frame-Options': 'allow-all' } } }, /X-Frame-Options/);
      refuse({ rate_limit: { interval: 'soon', burst: 1 } }, /rate_limit\.interval/);
      refuse({ rate_limit: { interval: '1s', burst: 0 } }, /rate_limit\.burst/);
      refuse(['a list'], /mapping/);
    });
    void it('accepts an empty file (no protection) and resolves relative file names against its directory', () => {
      const empty = parseWebConfig(null, '/etc/web.yml');
      assert.equal(empty.tls, undefined);
      assert.equal(empty.users.size, 0);
      const c = parseWebConfig({ tls_server_config: { cert_file: 'tls/a.crt', key_file: '/abs/a.key', min_version: 'TLS13' } }, '/etc/virt/web.yml');
      assert.deepEqual(c.tls?.material, { cert: { file: '/etc/virt/tls/a.crt' }, key: { file: '/abs/a.key' } });
      assert.equal(c.tls?.base.minVersion, 'TLSv1.3');
    });
    void it('fails at load time, naming the file, when the certificate cannot be read', async () => {
      const file = join(dir, 'missing-cert.yml');
      await writeFile(file, toYaml({ tls_server_config: { cert_file: 'nope.crt', key_file: 'nope.key' } }));
      await assert.rejects(loadWebGuard(file, silentLogger), (e: unknown) => isVirtError(e, 'VIRT_ERR_CONFIG') && e.message.includes(join(dir, 'nope.crt')));
      await writeFile(file, 'tls_server_config: [unclosed');
      await assert.rejects(loadWebGuard(file, silentLogger), (e: unknown) => isVirtError(e, 'VIRT_ERR_CONFIG') && e.message.includes(file));
    });
  });

  void describe('/metrics with TLS and basic auth', () => {
    let srv: Awaited<ReturnType<typeof metricsServer>>;
    before(async () => {
      const guard = await guardFrom('web.yml', {
        tls_server_config: { cert_file: certs.serverCert, key_file: certs.serverKey },
        http_server_config: { headers: { 'X-Frame-Options': 'deny', 'Strict-Transport-Security': 'max-age=31536000' } },
        basic_auth_users: { alice: hash, bob: '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW' },
      });
      srv = await metricsServer(guard);
    });
    after(async () => { await srv.close(); });

    void it('401 without credentials or with wrong ones, 200 with them (node client)', async () => {
      const url = `https://127.0.0.1:${srv.port}/metrics`;
      const none = await call(url, { ca });
      assert.equal(none.status, 401);
      assert.match(String(none.headers['www-authenticate']), /^Basic realm=/);
      assert.equal(none.headers['x-frame-options'], 'deny');
      assert.equal((await call(url, { ca, headers: basic('alice', 'wrong') })).status, 401);
      assert.equal((await call(url, { ca, headers: basic('mallory', password) })).status, 401);
      assert.equal((await call(url, { ca, headers: { authorization: 'Bearer x' } })).status, 401);
      const ok = await call(url, { ca, headers: basic('alice', password) });
      assert.equal(ok.status, 200);
      assert.equal(ok.text, 'virt_up 1\n');
      assert.equal(ok.headers['strict-transport-security'], 'max-age=31536000');
      assert.equal((await call(url, { ca, headers: basic('bob', 'U*U') })).status, 200, 'the OpenWall vector as a user hash');
    });

    void it('is reachable with curl --cacert, and refused without credentials or without the CA', async () => {
      const url = `https://127.0.0.1:${srv.port}/metrics`;
      const ok = await curl(['--cacert', certs.caCert, '-u', `alice:${password}`, '-w', '\n%{http_code}', url]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, 'virt_up 1\n\n200');
      const noCreds = await curl(['--cacert', certs.caCert, '-o', '/dev/null', '-w', '%{http_code}', url]);
      assert.equal(noCreds.stdout, '401');
      const noCa = await curl([url]);
      assert.equal(noCa.code, 60, 'curl refuses the server certificate without --cacert');
    });
  });

  void it('mTLS: RequireAndVerifyClientCert rejects an untrusted client certificate; client_allowed_sans filters trusted ones', async () => {
    const client = { cert: await readFile(certs.clientCert, 'utf8'), key: await readFile(certs.clientKey, 'utf8') };
    const rogue = { cert: await readFile(certs.rogueCert, 'utf8'), key: await readFile(certs.rogueKey, 'utf8') };
    const tls = { cert_file: certs.serverCert, key_file: certs.serverKey, client_ca_file: certs.caCert, client_auth_type: 'RequireAndVerifyClientCert' };
    const srv = await metricsServer(await guardFrom('mtls.yml', { tls_server_config: tls }));
    try {
      const url = `https://127.0.0.1:${srv.port}/metrics`;
      assert.equal((await call(url, { ca, ...client })).status, 200);
      await assert.rejects(call(url, { ca, ...rogue }));
      await assert.rejects(call(url, { ca }));
      const viaCurl = await curl(['--cacert', certs.caCert, '--cert', certs.clientCert, '--key', certs.clientKey, '-o', '/dev/null', '-w', '%{http_code}', url]);
      assert.equal(viaCurl.stdout, '200');
    } finally {
      await srv.close();
    }
    const sans = await metricsServer(await guardFrom('mtls-sans.yml', { tls_server_config: { ...tls, client_allowed_sans: ['someone.else.test'] } }));
    try {
      assert.equal((await call(`https://127.0.0.1:${sans.port}/metrics`, { ca, ...client })).status, 403);
    } finally {
      await sans.close();
    }
    const ifGiven = await metricsServer(await guardFrom('mtls-ifgiven.yml', { tls_server_config: { ...tls, client_auth_type: 'VerifyClientCertIfGiven' } }));
    try {
      const url = `https://127.0.0.1:${ifGiven.port}/metrics`;
      assert.equal((await call(url, { ca })).status, 200);
      assert.equal((await call(url, { ca, ...client })).status, 200);
      assert.equal((await call(url, { ca, ...rogue })).status, 403);
    } finally {
      await ifGiven.close();
    }
  });

  void it('re-reads replaced certificate files without a restart', async () => {
    const live = join(dir, 'live');
    await mkdir(live);
    await mkdir(join(dir, 'pki-next'));
    const next = makeCerts(join(dir, 'pki-next'));
    await copyFile(certs.serverCert, join(live, 'tls.crt'));
    await copyFile(certs.serverKey, join(live, 'tls.key'));
    const srv = await metricsServer(await guardFrom('reload.yml', { tls_server_config: { cert_file: 'live/tls.crt', key_file: 'live/tls.key' } }));
    try {
      const url = `https://127.0.0.1:${srv.port}/metrics`;
      const nextCa = await readFile(next.caCert, 'utf8');
      assert.equal((await call(url, { ca })).status, 200);
      await copyFile(next.serverKey, join(live, 'k.tmp'));
      await copyFile(next.serverCert, join(live, 'c.tmp'));
      await rename(join(live, 'k.tmp'), join(live, 'tls.key'));
      await rename(join(live, 'c.tmp'), join(live, 'tls.crt'));
      assert.equal((await call(url, { ca: nextCa })).status, 200);
      await assert.rejects(call(url, { ca }));
      const viaCurl = await curl(['--cacert', next.caCert, '-o', '/dev/null', '-w', '%{http_code}', url]);
      assert.equal(viaCurl.stdout, '200');
    } finally {
      await srv.close();
    }
  });

  void it('rate_limit: a burst, then 429 with Retry-After', async () => {
    const srv = await metricsServer(await guardFrom('rl.yml', { rate_limit: { interval: '1h', burst: 2 } }));
    try {
      const url = `http://127.0.0.1:${srv.port}/metrics`;
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await call(url)).status);
      assert.deepEqual(statuses, [200, 200, 429]);
    } finally {
      await srv.close();
    }
  });
});
