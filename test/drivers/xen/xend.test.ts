import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeXen, type FakeXen } from '../../fake-xen/index.ts';
import type { XendFault } from '../../fake-xen/xend-server.ts';
import { parseXendAddress, XendClient } from '../../../src/drivers/xen/xend.ts';
import { xendStateToDomainState } from '../../../src/drivers/xen/xend-domain.ts';
import { isVirtError, type VirtErrorCode } from '../../../src/virt/errors.ts';
import { silentLogger } from '../../../src/util/logger.ts';

const is = (code: VirtErrorCode) => (e: unknown): boolean => {
  assert.ok(isVirtError(e, code), `expected ${code}, got ${String((e as { code?: string }).code)}: ${String(e)}`);
  return true;
};

void describe('Xend client against the Xend stand-in', () => {
  let dir: string;
  let fx: FakeXen;
  let xend: XendClient;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virt-xend-test-'));
    fx = await startFakeXen({ dir, tcp: true });
    xend = await XendClient.open({ address: fx.paths.xendSocket, timeoutMs: 2000, maxResponseBytes: 64 * 1024, logger: silentLogger });
  });
  after(async () => {
    await xend.close();
    await fx.stop();
    await rm(dir, { recursive: true, force: true });
  });

  void it('sends requests like libvirt: no User-Agent, no Accept, form-encoded', async () => {
    fx.xend.log.length = 0;
    await xend.domainOp('web', 'mem_target_set', { target: '384' });
    const [req] = fx.xend.log;
    assert.ok(req !== undefined);
    assert.equal(req.headers['user-agent'], undefined);
    assert.equal(req.headers.accept, undefined);
    assert.equal(req.headers['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(req.body, 'op=mem_target_set&target=384');
    assert.equal(fx.host.get('web').memoryMiB, 384);
  });

  void it('encodes awkward form values properly (& + = % and spaces)', async () => {
    fx.xend.log.length = 0;
    const file = join(dir, 'a&b=c+d%20 e.save');
    await xend.save('web', file);
    assert.equal(new URLSearchParams(fx.xend.log[0]?.body).get('file'), file);
    const restored = await xend.restore(file);
    assert.match(restored, /\(name web\)/);
  });

  void it('reads node info and domains with units converted', async () => {
    const node = await xend.node();
    assert.equal(node.cpus, 4);
    assert.equal(node.memoryBytes, 4194304 * 4096);
    assert.equal(node.hypervisorVersion, '4.17.0');
    assert.equal(xend.configFormat, 4);
    const names = await xend.domainNames();
    assert.ok(names.includes('Domain-0') && names.includes('db'));
    assert.deepEqual(await xend.domainNames({ halted: true }), ['idle']);
    const db = await xend.domain('db');
    assert.equal(db.memoryBytes, 1024 * 1024 * 1024);
    assert.equal(db.maxMemoryBytes, 2048 * 1024 * 1024);
    assert.equal(db.state, 'blocked');
    assert.deepEqual(db.disks.map((d) => d.dev), ['xvda', 'xvdb']);
    fx.host.advance(2);
    const later = await xend.domain(String(db.domid));
    assert.ok(later.cpuTimeSeconds > db.cpuTimeSeconds, 'float seconds advance');
    assert.equal(later.uuid, db.uuid);
    const byUuid = await xend.domain(db.uuid);
    assert.equal(byUuid.name, 'db');
  });

  void it('reaches Xend over TCP too', async () => {
    const tcp = await XendClient.open({ address: `http://127.0.0.1:${String(fx.xend.tcpPort)}/`, timeoutMs: 2000, maxResponseBytes: 65536, logger: silentLogger });
    try {
      assert.equal(tcp.address.kind, 'tcp');
      assert.ok((await tcp.domainNames()).includes('web'));
    } finally {
      await tcp.close();
    }
  });

  void it('with no address: the unix socket first, then TCP (as libvirt)', async () => {
    const tcpUrl = `http://127.0.0.1:${String(fx.xend.tcpPort)}/`;
    const viaUnix = await XendClient.open({ defaults: [fx.paths.xendSocket, tcpUrl], timeoutMs: 2000, maxResponseBytes: 65536, logger: silentLogger });
    const viaTcp = await XendClient.open({ address: '', defaults: [join(dir, 'no-xend.sock'), tcpUrl], timeoutMs: 2000, maxResponseBytes: 65536, logger: silentLogger });
    try {
      assert.equal(viaUnix.address.kind, 'unix');
      assert.equal(viaTcp.address.kind, 'tcp');
      assert.deepEqual(await viaTcp.domainNames(), await viaUnix.domainNames());
    } finally {
      await viaUnix.close();
      await viaTcp.close();
    }
  });

  void it('404 on a domain is VIRT_ERR_NO_DOMAIN', async () => {
    await assert.rejects(xend.domain('no-such-domain'), is('VIRT_ERR_NO_DOMAIN'));
    await assert.rejects(xend.pause('no-such-domain'), is('VIRT_ERR_NO_DOMAIN'));
  });

  void it('a 500 with (xend.err ...) is a typed error carrying the message', async () => {
    await assert.rejects(xend.pause('idle'), (e: unknown) => is('VIRT_ERR_OPERATION_FAILED')(e) && /not running/.test((e as Error).message));
    await assert.rejects(xend.domainOp('web', 'no_such_op'), is('VIRT_ERR_NO_SUPPORT'));
  });

  const faults: Array<{ what: string; fault: XendFault; code: VirtErrorCode; post?: boolean }> = [
    { what: '404 plain text', fault: { status: 404, body: 'Not found: web', contentType: 'text/plain' }, code: 'VIRT_ERR_NO_DOMAIN' },
    { what: '500 xend.err', fault: { status: 500, body: "(xend.err 'Device 51712 (vbd) could not be connected')" }, code: 'VIRT_ERR_OPERATION_FAILED' },
    { what: '500 without body', fault: { status: 500, body: '' }, code: 'VIRT_ERR_OPERATION_FAILED' },
    { what: '200 with xend.err', fault: { status: 200, body: "(xend.err 'Cannot dump core for Domain-0')" }, code: 'VIRT_ERR_OPERATION_FAILED' },
    { what: '200 with xend.err naming a missing domain', fault: { status: 200, body: "(xend.err 'Domain not found: web')" }, code: 'VIRT_ERR_NO_DOMAIN' },
    { what: '202 with failed', fault: { status: 202, body: 'Shutdown failed: guest did not respond' }, code: 'VIRT_ERR_OPERATION_FAILED', post: true },
    { what: 'truncated body', fault: { status: 200, body: '(domain (domid 1) (name w', declaredLength: 500 }, code: 'VIRT_ERR_RPC' },
    { what: 'malformed S-expression', fault: { status: 200, body: '(domain (domid 1) (name "web)' }, code: 'VIRT_ERR_RPC' },
    { what: 'unbalanced S-expression', fault: { status: 200, body: '(domain (domid 1)))' }, code: 'VIRT_ERR_RPC' },
    { what: 'wrong expression', fault: { status: 200, body: '(node (nr_cpus 4))' }, code: 'VIRT_ERR_RPC' },
    { what: 'domain without uuid', fault: { status: 200, body: '(domain (domid 1) (name web))' }, code: 'VIRT_ERR_RPC' },
    { what: 'non-numeric memory', fault: { status: 200, body: '(domain (domid 1) (name web) (uuid 5b1f3a52-8c7d-4e2a-9f61-0c1d2e3f4a5b) (memory lots))' }, code: 'VIRT_ERR_RPC' },
    { what: 'HTML instead of SXP', fault: { status: 200, body: '<html><body>Xend</body></html>', contentType: 'text/html' }, code: 'VIRT_ERR_RPC' },
    { what: 'oversized declared body', fault: { status: 200, body: '(x)', declaredLength: 10_000_000 }, code: 'VIRT_ERR_RPC' },
    { what: 'oversized body', fault: { status: 200, body: '(' + 'a '.repeat(50_000) + ')' }, code: 'VIRT_ERR_RPC' },
    { what: '406 invalid request', fault: { status: 406, body: 'Invalid request', contentType: 'text/plain' }, code: 'VIRT_ERR_INVALID_ARG', post: true },
    { what: '503 unexpected status', fault: { status: 503, body: 'busy', contentType: 'text/plain' }, code: 'VIRT_ERR_OPERATION_FAILED' },
  ];
  for (const f of faults) {
    void it(`Xend reply "${f.what}" becomes ${f.code}`, async () => {
      fx.xend.fault = () => f.fault;
      try {
        if (f.post === true) await assert.rejects(xend.shutdown('web', 'poweroff'), is(f.code));
        else await assert.rejects(xend.domain('web'), is(f.code));
      } finally {
        fx.xend.fault = undefined;
      }
      // The client keeps working afterwards.
      assert.equal((await xend.domain('web')).name, 'web');
    });
  }

  void it('a Xend that never answers is cut off by the deadline', async () => {
    fx.xend.fault = () => ({ hang: true });
    try {
      const t0 = Date.now();
      await assert.rejects(xend.domain('web'), is('VIRT_ERR_OPERATION_TIMEOUT'));
      assert.ok(Date.now() - t0 < 10_000, 'well within a generous bound');
      const ac = new AbortController();
      const slow = new XendClient({ address: xend.address, timeoutMs: 60_000, maxResponseBytes: 65536, logger: silentLogger });
      const p = slow.domainNames({ signal: ac.signal });
      setTimeout(() => ac.abort(), 100);
      await assert.rejects(p, is('VIRT_ERR_OPERATION_TIMEOUT'));
      await slow.close();
    } finally {
      fx.xend.fault = undefined;
    }
  });

  void it('no Xend at all is VIRT_ERR_NO_CONNECT', async () => {
    await assert.rejects(XendClient.open({ address: join(dir, 'nothing.sock'), timeoutMs: 1000, maxResponseBytes: 1024, logger: silentLogger }), is('VIRT_ERR_NO_CONNECT'));
    await assert.rejects(XendClient.open({ address: 'http://127.0.0.1:1/', timeoutMs: 1000, maxResponseBytes: 1024, logger: silentLogger }), is('VIRT_ERR_NO_CONNECT'));
  });
});

void describe('Xend addresses and states', () => {
  void it('parses addresses and names a bad one', () => {
    assert.deepEqual(parseXendAddress('/var/lib/xend/xend-socket'), { kind: 'unix', path: '/var/lib/xend/xend-socket' });
    assert.deepEqual(parseXendAddress('http://localhost:8000/'), { kind: 'tcp', host: 'localhost', port: 8000 });
    assert.deepEqual(parseXendAddress('xenhost'), { kind: 'tcp', host: 'xenhost', port: 8000 });
    assert.deepEqual(parseXendAddress('10.0.0.1:8001'), { kind: 'tcp', host: '10.0.0.1', port: 8001 });
    for (const bad of ['ftp://x/', 'host:99999', 'relative/path', 'http://a b/']) {
      assert.throws(() => parseXendAddress(bad), (e: unknown) => isVirtError(e, 'VIRT_ERR_CONFIG') && (e as Error).message.includes(JSON.stringify(bad)));
    }
  });

  void it('maps the state letters r b p s c d as libvirt 0.4+ (s -> shutoff, d -> shutdown)', () => {
    assert.equal(xendStateToDomainState('r-----', false), 'running');
    assert.equal(xendStateToDomainState('-b----', false), 'blocked');
    assert.equal(xendStateToDomainState('--p---', false), 'paused');
    assert.equal(xendStateToDomainState('---s--', false), 'shutoff');
    assert.equal(xendStateToDomainState('----c-', false), 'crashed');
    assert.equal(xendStateToDomainState('-----d', false), 'shutdown');
    assert.equal(xendStateToDomainState('-bp---', false), 'paused');
    assert.equal(xendStateToDomainState('---s-d', false), 'shutoff');
    assert.equal(xendStateToDomainState('---sc-', false), 'crashed');
    assert.equal(xendStateToDomainState('------', false), 'nostate');
    assert.equal(xendStateToDomainState(undefined, true), 'shutoff');
    assert.equal(xendStateToDomainState(undefined, false), 'nostate');
  });
});
