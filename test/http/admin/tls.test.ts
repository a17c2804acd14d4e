import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { stringify as toYaml } from 'yaml';
import { tokenDigest } from '../../../src/http/admin/auth.ts';
import { isLoopback, parseListenAddress, startAdminServer } from '../../../src/http/admin/server.ts';
import { silentLogger } from '../../../src/util/logger.ts';
import { connectionFor } from '../../../src/virt/connection.ts';
import { isVirtError } from '../../../src/virt/errors.ts';
import { parseUri } from '../../../src/virt/uri.ts';
import { call, makeCerts, recordingConnection, recordingDriver, startAdmin, tempDir, TOKENS, type CertSet } from './fixtures.ts';

void describe('admin listener transport security', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let certs: CertSet;

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    certs = makeCerts(await mkdir(join(dir, 'pki'), { recursive: true }).then(() => join(dir, 'pki')));
  });
  after(async () => { await cleanup(); });

  async function writeConfig(name: string, doc: Record<string, unknown>): Promise<string> {
    const file = join(dir, name);
    await writeFile(file, toYaml({ audit_log: join(dir, `${name}.audit`), tokens: [{ name: 'ops', role: 'admin', sha256: tokenDigest(TOKENS.admin).toString('hex') }], ...doc }));
    return file;
  }

  const start = (settings: Record<string, string | boolean>) =>
    startAdminServer({ connection: recordingConnection(recordingDriver().driver), settings, logger: silentLogger, registry: new Registry() });

  void it('parses listen addresses and knows loopback from the rest', () => {
    assert.deepEqual(parseListenAddress('127.0.0.1:9478'), { host: '127.0.0.1', port: 9478 });
    assert.deepEqual(parseListenAddress('[::1]:0'), { host: '::1', port: 0 });
    assert.deepEqual(parseListenAddress(':9478'), { host: '', port: 9478 });
    for (const bad of ['9478', 'host', '1.2.3.4:99999', '::1:80', 'a b:1']) {
      assert.throws(() => parseListenAddress(bad), (e: unknown) => isVirtError(e, 'VIRT_ERR_CONFIG'), bad);
    }
    assert.deepEqual(['127.0.0.1', '127.9.9.9', '::1', 'localhost', '::ffff:127.0.0.1'].map(isLoopback), [true, true, true, true, true]);
    assert.deepEqual(['', '0.0.0.0', '::', '10.0.0.1', '192.0.2.7', 'example.com', '128.0.0.1'].map(isLoopback), [false, false, false, false, false, false, false]);
  });

  void it('refuses to start without TLS on a non-loopback address, even with insecure-loopback', async () => {
    const file = await writeConfig('plain.yml', {});
    for (const address of ['0.0.0.0:0', ':0', '[::]:0', '192.0.2.7:0']) {
      for (const insecure of [false, true]) {
        await assert.rejects(
          start({ 'admin.listen-address': address, 'admin.config.file': file, 'admin.insecure-loopback': insecure }),
          (e: unknown) => isVirtError(e, 'VIRT_ERR_CONFIG') && /TLS is required/.test(e.message),
          `${address} insecure=${String(insecure)}`,
        );
      }
    }
  });

  void it('refuses plain HTTP on loopback unless insecure-loopback is given explicitly', async () => {
    const file = await writeConfig('plain-lo.yml', {});
    await assert.rejects(start({ 'admin.listen-address': '127.0.0.1:0', 'admin.config.file': file }), (e: unknown) => isVirtError(e, 'VIRT_ERR_CONFIG'));
    const s = await start({ 'admin.listen-address': '127.0.0.1:0', 'admin.config.file': file, 'admin.insecure-loopback': true });
    try {
      assert.equal(s.tls, false);
      assert.equal((await call(`http://127.0.0.1:${s.port}/api/v1/domains`, { token: TOKENS.admin })).status, 200);
    } finally {
      await s.close();
    }
  });

  void it('refuses a read-only connection, a missing config file and an empty address', async () => {
    const file = await writeConfig('ro.yml', {});
    const ro = connectionFor(parseUri('test:///default'), recordingDriver().driver, true);
    const settings = { 'admin.listen-address': '127.0.0.1:0', 'admin.config.file': file, 'admin.insecure-loopback': true };
    await assert.rejects(startAdminServer({ connection: ro, settings, logger: silentLogger, registry: new Registry() }), (e: unknown) => isVirtError(e, 'VIRT_ERR_CONFIG'));
    await assert.rejects(start({ ...settings, 'admin.config.file': '' }), (e: unknown) => isVirtError(e, 'VIRT_ERR_CONFIG'));
    await assert.rejects(start({ ...settings, 'admin.config.file': join(dir, 'missing.yml') }), (e: unknown) => isVirtError(e, 'VIRT_ERR_CONFIG') && e.message.includes('missing.yml'));
    await assert.rejects(start({ ...settings, 'admin.listen-address': '' }), (e: unknown) => isVirtError(e, 'VIRT_ERR_CONFIG'));
  });

  void it('serves TLS on all interfaces when configured; plain HTTP to it gets no API answer', async () => {
    const file = await writeConfig('tls.yml', { tls: { cert_file: certs.serverCert, key_file: certs.serverKey } });
    const s = await start({ 'admin.listen-address': '0.0.0.0:0', 'admin.config.file': file });
    try {
      assert.equal(s.tls, true);
      const url = `https://127.0.0.1:${s.port}/api/v1/domains`;
      assert.equal((await call(url, { token: TOKENS.admin, ca: await readFile(certs.caCert, 'utf8') })).status, 200);
      assert.equal((await call(url, { ca: await readFile(certs.caCert, 'utf8') })).status, 401);
      // Without the CA the client refuses the server.
      await assert.rejects(call(url, { token: TOKENS.admin }));
      const plain = await call(`http://127.0.0.1:${s.port}/api/v1/domains`, { token: TOKENS.admin }).catch((e: unknown) => e);
      assert.ok(plain instanceof Error || (plain as { status: number }).status === 400, 'plain HTTP is not served the API');
    } finally {
      await s.close();
    }
  });

  void describe('client certificates (mTLS)', () => {
    let ca: string;
    let client: { cert: string; key: string };
    let rogue: { cert: string; key: string };
    before(async () => {
      ca = await readFile(certs.caCert, 'utf8');
      client = { cert: await readFile(certs.clientCert, 'utf8'), key: await readFile(certs.clientKey, 'utf8') };
      rogue = { cert: await readFile(certs.rogueCert, 'utf8'), key: await readFile(certs.rogueKey, 'utf8') };
    });

    void it('optional: a trusted certificate maps to its role; an untrusted one with the same SAN is rejected (401)', async () => {
      const rec = recordingDriver();
      const { dir: d, cleanup: c } = await tempDir();
      const f = await startAdmin({
        connection: recordingConnection(rec.driver),
        dir: d,
        tls: true,
        extra: {
          tls: { cert_file: certs.serverCert, key_file: certs.serverKey, client_ca_file: certs.caCert, client_auth: 'optional' },
          client_certificates: [{ name: 'ops-console', role: 'operator', san: certs.clientSan }],
        },
      });
      try {
        const list = `${f.url}/api/v1/domains`;
        assert.equal((await call(list, { ca, ...client })).status, 200);
        assert.equal((await call(`${list}/web-1/suspend`, { method: 'POST', ca, ...client })).status, 200);
        assert.equal((await call(`${list}/web-1/destroy`, { method: 'POST', ca, ...client })).status, 403, 'operator via certificate may not destroy');
        const bad = await call(list, { ca, ...rogue });
        assert.equal(bad.status, 401);
        assert.match((bad.json as { detail: string }).detail, /not signed by the configured client CA/);
        assert.equal((await call(`${list}/web-1/resume`, { method: 'POST', ca, ...rogue })).status, 401);
        assert.equal((await call(`${list}/web-1/resume`, { method: 'POST', ca, ...rogue, token: TOKENS.admin })).status, 401, 'an untrusted certificate fails even with a valid token');
        assert.equal((await call(list, { ca, token: TOKENS.admin })).status, 200, 'a token alone is fine when client_auth is optional');
        assert.equal((await call(list, { ca })).status, 401, 'no certificate, no token');
        // A bad token is not rescued by a good certificate.
        assert.equal((await call(list, { ca, ...client, token: 'nope' })).status, 401);
        assert.deepEqual(rec.calls, ['suspend web-1']);
      } finally {
        await f.close();
        await c();
      }
    });

    void it('required: an untrusted client certificate fails the handshake; a trusted one passes', async () => {
      const { dir: d, cleanup: c } = await tempDir();
      const f = await startAdmin({
        connection: recordingConnection(recordingDriver().driver),
        dir: d,
        tls: true,
        extra: {
          tls: { cert_file: certs.serverCert, key_file: certs.serverKey, client_ca_file: certs.caCert, client_auth: 'required' },
          client_certificates: [{ name: 'ops-console', role: 'viewer', san: certs.clientSan }],
        },
      });
      try {
        const list = `${f.url}/api/v1/domains`;
        assert.equal((await call(list, { ca, ...client })).status, 200);
        await assert.rejects(call(list, { ca, ...rogue }));
        await assert.rejects(call(list, { ca, token: TOKENS.admin }), 'no certificate: refused even with a token');
      } finally {
        await f.close();
        await c();
      }
    });
  });

  void it('picks up a replaced server certificate without a restart', async () => {
    const live = join(dir, 'live');
    await mkdir(live, { recursive: true });
    const next = makeCerts(await mkdir(join(dir, 'pki2'), { recursive: true }).then(() => join(dir, 'pki2')));
    await copyFile(certs.serverCert, join(live, 'tls.crt'));
    await copyFile(certs.serverKey, join(live, 'tls.key'));
    const file = await writeConfig('reload.yml', { tls: { cert_file: join(live, 'tls.crt'), key_file: join(live, 'tls.key') } });
    const s = await start({ 'admin.listen-address': '127.0.0.1:0', 'admin.config.file': file });
    try {
      const url = `https://127.0.0.1:${s.port}/api/v1/domains`;
      const oldCa = await readFile(certs.caCert, 'utf8');
      const newCa = await readFile(next.caCert, 'utf8');
      assert.equal((await call(url, { token: TOKENS.admin, ca: oldCa })).status, 200);
      await assert.rejects(call(url, { token: TOKENS.admin, ca: newCa }));
      // Atomic replacement, as a certificate manager does it: key and cert renamed into place.
      await copyFile(next.serverKey, join(live, 'tls.key.new'));
      await copyFile(next.serverCert, join(live, 'tls.crt.new'));
      await rename(join(live, 'tls.key.new'), join(live, 'tls.key'));
      await rename(join(live, 'tls.crt.new'), join(live, 'tls.crt'));
      assert.equal((await call(url, { token: TOKENS.admin, ca: newCa })).status, 200);
      await assert.rejects(call(url, { token: TOKENS.admin, ca: oldCa }));
      // A broken file keeps the last good certificate.
      await writeFile(join(live, 'tls.crt'), 'not a certificate');
      assert.equal((await call(url, { token: TOKENS.admin, ca: newCa })).status, 200);
    } finally {
      await s.close();
    }
  });
});
