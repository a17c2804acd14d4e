/**
 * Lifecycle through the admin API and virtctl against libvirtd's own test
 * driver (libvirt+test:///default through a private daemon): every change
 * shows in `virsh list --all`, and libvirt's refusals come back typed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { open, type Connection } from '../../../src/virt/connection.ts';
import { isVirtError } from '../../../src/virt/errors.ts';
import { ROOT } from '../../helpers/exporter.ts';
import { call, startAdmin, tempDir, TOKENS, type AdminFixture, type Reply } from '../../http/admin/fixtures.ts';
import { LibvirtClient } from '../../../src/drivers/libvirt/client.ts';
import { Proc, readNodeInfo } from '../../../src/drivers/libvirt/protocol.ts';
import { PrivateLibvirtd } from './daemon.ts';

const D = '/api/v1/domains';
const xml = (name: string): string => `<domain type='test'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='i686'>hvm</type></os></domain>`;

void describe('libvirt lifecycle against libvirtd\'s test driver', { timeout: 180_000 }, () => {
  let lv: PrivateLibvirtd;
  let rw: Connection;
  let f: AdminFixture;
  let cleanup: () => Promise<void>;
  let uri: string;

  before(async () => {
    lv = await PrivateLibvirtd.start();
    uri = `libvirt+test:///default?socket=${lv.rwSocket}`;
    // test:///default keeps its state while a connection holds it: this one does, for virsh to see.
    rw = await open(uri, { readOnly: false });
    const t = await tempDir();
    cleanup = t.cleanup;
    f = await startAdmin({ connection: rw, dir: t.dir });
  });
  after(async () => {
    await f?.close().catch(() => undefined); // the last test closes it already
    await rw?.close();
    await cleanup?.();
    await lv?.stop();
  });

  /** Name -> state as `virsh list --all` prints it. */
  const virshList = async (): Promise<Map<string, string>> => {
    const out = await lv.virsh(['list', '--all'], 'test');
    return new Map(out.split('\n').filter((l) => l.trim() !== '').map((l) => {
      const [, name = '', ...state] = l.trim().split(/\s+/);
      return [name, state.join(' ')];
    }));
  };
  const post = (path: string, role: keyof typeof TOKENS, body?: unknown): Promise<Reply> =>
    call(f.url + path, { method: 'POST', token: TOKENS[role], ...(body === undefined ? {} : { body: JSON.stringify(body) }) });

  void it('admin API: define (XML passed through), start, suspend, resume, reboot, shutdown, save, restore, destroy, undefine', async () => {
    const defined = await post(D, 'admin', { xml: xml('lv-adm') });
    assert.equal(defined.status, 201, defined.text);
    assert.equal((await virshList()).get('lv-adm'), 'shut off');
    const steps: Array<[string, unknown, string]> = [
      ['start', undefined, 'running'],
      ['suspend', undefined, 'paused'],
      ['resume', undefined, 'running'],
      ['reboot', undefined, 'running'],
      ['shutdown', undefined, 'shut off'],
      ['start', undefined, 'running'],
      ['save', { file: 'lv-adm.save' }, 'shut off'],
      ['restore', { file: 'lv-adm.save' }, 'running'],
      ['destroy', undefined, 'shut off'],
    ];
    for (const [action, body, want] of steps) {
      const r = await post(`${D}/lv-adm/${action}`, 'admin', body);
      assert.equal(r.status, 200, `${action}: ${r.text}`);
      assert.equal((await virshList()).get('lv-adm'), want, `virsh list after ${action}`);
    }
    const del = await call(`${f.url}${D}/lv-adm`, { method: 'DELETE', token: TOKENS.admin });
    assert.equal(del.status, 200, del.text);
    assert.equal((await virshList()).has('lv-adm'), false);
  });

  void it('libvirt\'s own refusals come back as typed errors with libvirt\'s message', async () => {
    const bad = await post(D, 'admin', { xml: '<domain type="test"><name>x</name></domain>' });
    assert.equal(bad.status, 400, bad.text);
    assert.equal((bad.json as { code: string }).code, 'VIRT_ERR_XML_ERROR');
    assert.match(bad.text, /libvirt/);
    assert.equal((await post(D, 'admin', { name: 'json-style' })).status, 400);
    // libvirt's test driver reports state refusals as internal errors: mapped as such, libvirt's code kept.
    // (Real QEMU's VIR_ERR_OPERATION_INVALID gives 409: stats.test.ts.)
    await rw.define({ xml: xml('lv-off') });
    const r = await post(`${D}/lv-off/suspend`, 'admin');
    assert.equal(r.status, 500, r.text);
    assert.equal((r.json as { code: string }).code, 'VIRT_ERR_OPERATION_FAILED');
    assert.match(r.text, /not running.*VIR_ERR_INTERNAL_ERROR, code 1/);
    await rw.undefine('lv-off');
    await assert.rejects(rw.start('no-such-domain'), (e: unknown) => isVirtError(e, 'VIRT_ERR_NO_DOMAIN'));
    const ro = await open(uri, { readOnly: true });
    try {
      await assert.rejects(ro.destroy('test'), (e: unknown) => isVirtError(e, 'VIRT_ERR_OPERATION_DENIED'));
      assert.ok((await ro.listDomains()).some((d) => d.name === 'test'));
    } finally {
      await ro.close();
    }
  });

  void it('virtctl: define from an XML file, start, suspend, destroy, undefine', async () => {
    const file = join(lv.dir, 'lv-ctl.xml');
    writeFileSync(file, xml('lv-ctl'));
    const virtctl = (...args: string[]): string => {
      const r = spawnSync(`${ROOT}bin/virtctl`, ['--connect', uri, ...args], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, `virtctl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    // Each virtctl run is its own connection; ours (rw) keeps test:///default's state alive between them.
    virtctl('define', file);
    assert.equal((await virshList()).get('lv-ctl'), 'shut off');
    for (const [cmd, want] of [['start', 'running'], ['suspend', 'paused'], ['destroy', 'shut off']] as const) {
      virtctl(cmd, 'lv-ctl');
      assert.equal((await virshList()).get('lv-ctl'), want, `after virtctl ${cmd}`);
    }
    virtctl('undefine', 'lv-ctl');
    assert.equal((await virshList()).has('lv-ctl'), false);
  });

  void it('answers libvirtd\'s own keepalive pings: a daemon that drops silent clients after 1 s keeps us', async () => {
    lv.setConf('keepalive_interval', '1');
    lv.setConf('keepalive_count', '1');
    await lv.restart();
    let lost = 0;
    const c = new LibvirtClient({ socketPath: lv.roSocket, name: 'test:///default', readOnly: true, maxMessageBytes: 1 << 25, connectTimeoutMs: 5000, keepaliveIntervalMs: 60_000, keepaliveCount: 5, onDisconnect: () => lost++ });
    try {
      await c.connect({ timeoutMs: 5000 });
      const calls = c.calls;
      await new Promise((r) => setTimeout(r, 4000)); // idle: only the daemon's pings and our pongs cross
      await c.call(Proc.NODE_GET_INFO, undefined, readNodeInfo, { timeoutMs: 5000 });
      assert.equal(lost, 0);
      assert.equal(c.calls - calls, 1, 'no reconnect handshake');
    } finally {
      c.close();
    }
  });

  void it('a daemon that demands SASL: a clear error naming the socket and the setting, for reads and writes', async () => {
    await f.close();
    await rw.close();
    lv.setConf('auth_unix_ro', '"sasl"');
    lv.setConf('auth_unix_rw', '"sasl"');
    await lv.restart();
    for (const readOnly of [true, false]) {
      await assert.rejects(open(uri, { readOnly }), (e: unknown) => {
        assert.ok(isVirtError(e, 'VIRT_ERR_AUTH_UNAVAILABLE'), String(e));
        assert.ok(e.message.includes(readOnly ? lv.roSocket : lv.rwSocket), e.message);
        assert.match(e.message, readOnly ? /auth_unix_ro/ : /auth_unix_rw/);
        return true;
      });
    }
  });
});
