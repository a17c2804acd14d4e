import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { resolvePaths, sessionBaseDir } from '../../src/qemud-shared/paths.ts';
import { QEMU } from '../../src/qemud-shared/settings.ts';
import { open } from '../../src/virt/connection.ts';

void it('qemu:///system lives under /run and /var/lib', () => {
  const p = resolvePaths('system', {}, {});
  assert.equal(p.rwSocket, '/run/virt-exporter/qemu/virt-qemud-sock');
  assert.equal(p.roSocket, '/run/virt-exporter/qemu/virt-qemud-sock-ro');
  assert.equal(p.domainsDir, '/var/lib/virt-exporter/qemu/domains');
});

void it('qemu:///session follows VIRT_EXPORTER_RUNTIME_DIR, then XDG_RUNTIME_DIR, then /tmp', () => {
  assert.equal(sessionBaseDir({ VIRT_EXPORTER_RUNTIME_DIR: '/x', XDG_RUNTIME_DIR: '/run/user/7' }), '/x');
  assert.equal(sessionBaseDir({ XDG_RUNTIME_DIR: '/run/user/7' }), '/run/user/7/virt-exporter');
  assert.equal(sessionBaseDir({}), `/tmp/virt-exporter-${process.getuid?.() ?? 0}`);
  const p = resolvePaths('session', {}, { VIRT_EXPORTER_RUNTIME_DIR: '/x' });
  assert.equal(p.rwSocket, '/x/qemu/virt-qemud-sock');
  assert.equal(p.domainsDir, '/x/qemu/state/domains');
  const o = resolvePaths('session', { runtimeDir: '/r', stateDir: '/s' }, { VIRT_EXPORTER_RUNTIME_DIR: '/x' });
  assert.equal(o.roSocket, '/r/virt-qemud-sock-ro');
  assert.equal(o.savesDir, '/s/saves');
});

void it('settings apply the schema defaults when absent and coerce strings', () => {
  assert.equal(QEMU.get({}, 'shutdown-grace-seconds'), 30);
  assert.equal(QEMU.get({ 'qemu.shutdown-grace-seconds': '7' }, 'shutdown-grace-seconds'), 7);
  assert.equal(QEMU.get({ 'qemu.autostart': 'false' }, 'autostart'), false);
  assert.equal(QEMU.get({}, 'runtime-dir'), '');
});

void it('with autostart off and no supervisor, opening fails with VIRT_ERR_NO_CONNECT', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vq-noauto-'));
  try {
    await assert.rejects(open('qemu:///session', { readOnly: true, settings: { 'qemu.autostart': false, 'qemu.runtime-dir': dir } }), { code: 'VIRT_ERR_NO_CONNECT' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
