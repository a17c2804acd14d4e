import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { stringify as toYaml } from 'yaml';
import { tokenDigest } from '../../../src/http/admin/auth.ts';
import { startAdminEndpoint } from '../../../src/http/admin/endpoint.ts';
import { silentLogger } from '../../../src/util/logger.ts';
import { isVirtError } from '../../../src/virt/errors.ts';
import { call, tempDir, TOKENS } from './fixtures.ts';

void describe('startAdminEndpoint (what the exporter calls)', () => {
  void it('does nothing when admin.listen-address is empty or absent', async () => {
    const base = { uri: 'test:///default', driverSettings: {}, registry: new Registry(), logger: silentLogger };
    assert.equal(await startAdminEndpoint({ ...base, adminSettings: {} }), undefined);
    assert.equal(await startAdminEndpoint({ ...base, adminSettings: { 'admin.listen-address': '' } }), undefined);
  });

  void it('opens its own read-write connection, serves, and refuses non-loopback without TLS', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const file = join(dir, 'admin.yml');
      await writeFile(file, toYaml({ audit_log: join(dir, 'audit.log'), tokens: [{ name: 'ops', role: 'operator', sha256: tokenDigest(TOKENS.operator).toString('hex') }] }));
      const registry = new Registry();
      const base = { uri: 'test:///default', driverSettings: {}, registry, logger: silentLogger };
      await assert.rejects(
        startAdminEndpoint({ ...base, adminSettings: { 'admin.listen-address': '0.0.0.0:0', 'admin.config.file': file, 'admin.insecure-loopback': true } }),
        (e: unknown) => isVirtError(e, 'VIRT_ERR_CONFIG'),
      );
      const ep = await startAdminEndpoint({ ...base, adminSettings: { 'admin.listen-address': '127.0.0.1:0', 'admin.config.file': file, 'admin.insecure-loopback': true } });
      assert.ok(ep !== undefined);
      try {
        const url = `http://127.0.0.1:${ep.port}/api/v1/domains`;
        assert.equal((await call(url, { token: TOKENS.operator })).status, 200);
        assert.equal((await call(`${url}/legacy-1/start`, { method: 'POST', token: TOKENS.operator })).status, 200);
        assert.match(await registry.metrics(), /virt_admin_requests_total\{action="start",outcome="ok"\} 1/);
      } finally {
        await ep.close();
      }
    } finally {
      await cleanup();
    }
  });
});
