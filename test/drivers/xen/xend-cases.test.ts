// The Xend path where it disagreed with real Xend (issue 11, item 4): each
// case a test of its own, against the project's Xend stand-in, which serves
// the halted list the way real Xend does.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { open, type Connection } from '../../../src/virt/connection.ts';
import { isVirtError, type VirtErrorCode } from '../../../src/virt/errors.ts';
import { silentLogger } from '../../../src/util/logger.ts';
import { startXendServer } from '../../fake-xen/xend-server.ts';
import { buildNative, ROOT, startXenFixture, type XenFixture } from './fixture.ts';

const execFileP = promisify(execFile);

const is = (code: VirtErrorCode, re?: RegExp) => (e: unknown): boolean => {
  assert.ok(isVirtError(e, code), `expected ${code}, got ${String((e as { code?: string }).code)}: ${String(e)}`);
  if (re !== undefined) assert.match((e as Error).message, re);
  return true;
};

async function eventually(what: string, fn: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + 15_000;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > until) assert.fail(`${what} did not happen within 15 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

void describe('Xend path: the cases real Xend disagreed with', () => {
  let f: XenFixture;
  before(async () => {
    await buildNative();
    f = await startXenFixture();
  });
  after(async () => {
    f.fx.xend.fault = undefined;
    await f?.stop();
  });

  /** Non-root without a virt-proxy socket: Xend answers every read XenStore cannot. */
  const xendOnly = (extra: Record<string, string> = {}): Promise<Connection> =>
    open('xen:///', { readOnly: true, logger: silentLogger, settings: { ...f.settings, 'xen.privileged': 'user', 'xen.proxy-socket': join(f.dir, 'absent-proxy.sock'), ...extra } });
  const asRoot = (extra: Record<string, string> = {}): Promise<Connection> =>
    open('xen:///', { readOnly: false, logger: silentLogger, settings: { ...f.settings, 'xen.privileged': 'root', ...extra } });
  const gets = (pred: (url: string) => boolean): number => f.fx.xend.log.filter((r) => r.method === 'GET' && pred(r.url)).length;
  const posts = (): number => f.fx.xend.log.filter((r) => r.method === 'POST').length;

  void it('the stand-in serves ?state=halted&detail=1 as real Xend does: the running domains, state= ignored', async () => {
    const c = await xendOnly();
    await c.close();
    const xend = await import('../../../src/drivers/xen/xend.ts');
    const client = await xend.XendClient.open({ address: f.fx.paths.xendSocket, timeoutMs: 2000, maxResponseBytes: 1 << 20, logger: silentLogger });
    try {
      const sx = await client.get('/xend/domain?state=halted&detail=1');
      assert.ok(Array.isArray(sx));
      const names = (sx as unknown[]).map((d) => (d as string[][]).find((x) => x[0] === 'name')?.[1]);
      assert.ok(names.includes('web') && !names.includes('idle'), `got ${names.join(',')}`);
    } finally {
      await client.close();
    }
  });

  void it('inactive managed domains are in the bulk read (halted names, then one detail read each)', async () => {
    for (const c of [await xendOnly(), await asRoot()]) {
      try {
        const bulk = await c.allDomainStats({ groups: ['state', 'memory'], inactive: true });
        assert.deepEqual(bulk.errors, []);
        const idle = bulk.domains.find((d) => d.info.name === 'idle');
        assert.equal(idle?.info.state, 'shutoff');
        assert.equal(idle?.info.id, null);
        assert.equal(idle?.info.memoryBytes, 0);
        assert.equal(bulk.domains.filter((d) => d.info.name === 'web').length, 1, 'no running domain twice');
      } finally {
        await c.close();
      }
    }
  });

  void it('one hung Xend request (/xend/node/) costs only itself: the domain read does not wait on it', async () => {
    const c = await xendOnly();
    try {
      f.fx.xend.fault = (m, url) => (m === 'GET' && url.startsWith('/xend/node') ? { hang: true } : undefined);
      let hostSettled = false;
      const host = c.hostInfo().finally(() => (hostSettled = true));
      host.catch(() => undefined);
      // Let the node request reach Xend first.
      await eventually('the node request reaching Xend', () => Promise.resolve(gets((u) => u.startsWith('/xend/node')) > 0 && f.fx.xend.log.at(-1)?.url.startsWith('/xend/node') === true));
      const bulk = await c.allDomainStats({ groups: ['state'], inactive: true });
      assert.equal(hostSettled, false, 'the domain read finished while the node request still hangs');
      assert.ok(bulk.domains.some((d) => d.info.name === 'web'));
      assert.ok(bulk.domains.some((d) => d.info.name === 'idle'));
      await assert.rejects(host, is('VIRT_ERR_OPERATION_TIMEOUT'));
    } finally {
      f.fx.xend.fault = undefined;
      await c.close();
    }
  });

  void it('a hung halted-list request costs only the inactive domains: the running ones are still reported', async () => {
    for (const c of [await xendOnly({ 'xen.inactive-timeout-ms': '300' }), await asRoot({ 'xen.inactive-timeout-ms': '300' })]) {
      try {
        f.fx.xend.fault = (m, url) => (m === 'GET' && url.includes('state=halted') ? { hang: true } : undefined);
        const ac = new AbortController();
        const t = setTimeout(() => ac.abort(), 4000);
        const bulk = await c.allDomainStats({ groups: ['state'], inactive: true, signal: ac.signal });
        clearTimeout(t);
        assert.deepEqual(bulk.domains.map((d) => d.info.name), ['Domain-0', 'web', 'db']);
        assert.deepEqual(bulk.errors.map((e) => e.code), ['VIRT_ERR_OPERATION_TIMEOUT']);
        assert.match(bulk.errors[0]?.message ?? '', /shut-off managed domains/);
      } finally {
        f.fx.xend.fault = undefined;
        await c.close();
      }
    }
  });

  void it('one domain list per scrape; with a slow Xend (0.5 s a request) a 2 s deadline is still met', async () => {
    const c = await xendOnly();
    const r = await asRoot();
    try {
      f.fx.xend.log.length = 0;
      await c.allDomainStats({ groups: ['state'], inactive: true });
      assert.equal(gets((u) => u === '/xend/domain?detail=1'), 1, 'Xend as the bulk source: the running list once');
      assert.equal(gets((u) => u === '/xend/domain?state=halted'), 1);
      f.fx.xend.log.length = 0;
      await r.allDomainStats({ groups: ['state'], inactive: true });
      assert.equal(gets((u) => u === '/xend/domain?detail=1'), 0, 'with the hypervisor reading the running domains, Xend is asked only for the halted ones');
      assert.equal(gets((u) => u === '/xend/domain?state=halted'), 1);

      f.fx.xend.fault = () => ({ delayMs: 500 });
      const ac = new AbortController();
      const t = setTimeout(() => ac.abort(), 2000);
      const [host, bulk] = await Promise.all([c.hostInfo({ signal: ac.signal }), c.allDomainStats({ groups: ['state'], inactive: true, signal: ac.signal })]);
      clearTimeout(t);
      assert.equal(ac.signal.aborted, false);
      assert.equal(host.cpus, 4);
      assert.deepEqual(bulk.errors, []);
      assert.ok(bulk.domains.some((d) => d.info.name === 'idle'));
    } finally {
      f.fx.xend.fault = undefined;
      await c.close();
      await r.close();
    }
  });

  void it('a Xend that was missing at open is opened later (retried with backoff), no restart needed', async () => {
    const late = join(f.dir, 'late-xend.sock');
    const c = await asRoot({ 'xen.xend-address': late, 'xen.retry-ms': '100' });
    let srv: Awaited<ReturnType<typeof startXendServer>> | undefined;
    try {
      await assert.rejects(c.domainInfo('idle'), is('VIRT_ERR_NO_CONNECT', /xend/i));
      const b = await c.allDomainStats({ groups: ['state'], inactive: true });
      assert.ok(!b.domains.some((d) => d.info.name === 'idle'));
      assert.equal(b.errors.length, 1, 'the missing inactive part is reported');
      srv = await startXendServer(f.fx.host, { socketPath: late });
      await eventually('Xend reopened', async () => (await c.domainInfo('idle')).state === 'shutoff');
      const bulk = await c.allDomainStats({ groups: ['state'], inactive: true });
      assert.deepEqual(bulk.errors, []);
      assert.ok(bulk.domains.some((d) => d.info.name === 'idle'));
    } finally {
      await c.close();
      await srv?.close();
    }
  });

  void it('virtctl does not pass XenStore-only readings off as real: it says Xend is missing and fails', async () => {
    const env = { ...process.env, VIRT_EXPORTER_CONNECT: '', VIRT_FAKE_XEN_STATE: f.fx.paths.stateFile };
    const flags = Object.entries({ ...f.settings, 'xen.privileged': 'user', 'xen.proxy-socket': join(f.dir, 'none.sock'), 'xen.xend-address': join(f.dir, 'none-xend.sock') }).map(([k, v]) => `--${k}=${v}`);
    const r = await execFileP(join(ROOT, 'bin', 'virtctl'), ['--connect', 'xen:///', ...flags, 'dominfo', 'web'], { env, timeout: 60_000 }).then(
      (x) => ({ code: 0, ...x }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    assert.notEqual(r.code, 0, `virtctl exited 0: ${r.stdout}`);
    assert.doesNotMatch(r.stdout, /nostate/);
    assert.match(r.stderr, /VIRT_ERR_NO_CONNECT/);
    assert.match(r.stderr, /xend/i);
  });

  void it('a malformed 200 reply to a state change is VIRT_ERR_RPC, not success', async () => {
    const c = await asRoot();
    try {
      for (const body of ['<html><body>OK</body></html>', 'garbage ((', 'ok']) {
        f.fx.xend.fault = (m, url) => (m === 'POST' && url.startsWith('/xend/domain/') ? { status: 200, body, contentType: body.startsWith('<') ? 'text/html' : 'application/sxp' } : undefined);
        await assert.rejects(c.suspend('web'), is('VIRT_ERR_RPC'), body);
      }
      f.fx.xend.fault = undefined;
      assert.notEqual(f.fx.host.get('web').status, 'paused', 'nothing was paused');
      await c.suspend('web');
      assert.equal(f.fx.host.get('web').status, 'paused');
      await c.resume('web');
    } finally {
      f.fx.xend.fault = undefined;
      await c.close();
    }
  });

  void it('wrong-state operations are VIRT_ERR_OPERATION_INVALID and send nothing to Xend', async () => {
    const c = await asRoot();
    try {
      const before = posts();
      await assert.rejects(c.resume('web'), is('VIRT_ERR_OPERATION_INVALID', /not paused/));
      await assert.rejects(c.start('web'), is('VIRT_ERR_OPERATION_INVALID', /already active/));
      await assert.rejects(c.undefine('web'), is('VIRT_ERR_OPERATION_INVALID', /active/));
      await assert.rejects(c.suspend('idle'), is('VIRT_ERR_OPERATION_INVALID'));
      await assert.rejects(c.shutdown('idle'), is('VIRT_ERR_OPERATION_INVALID'));
      await assert.rejects(c.destroy('idle'), is('VIRT_ERR_OPERATION_INVALID'));
      await assert.rejects(c.save('idle', join(f.dir, 'x.save')), is('VIRT_ERR_OPERATION_INVALID'));
      assert.equal(posts(), before, 'no POST reached Xend');
    } finally {
      await c.close();
    }
  });

  void it('listing domains (as GET /api/v1/domains does) includes shut-off managed domains', async () => {
    const c = await asRoot();
    try {
      const names = (await c.listDomains()).map((d) => d.name);
      assert.ok(names.includes('idle'), `got ${names.join(',')}`);
      assert.deepEqual((await c.listDomains({ inactive: false })).map((d) => d.name), ['Domain-0', 'web', 'db']);
      assert.deepEqual((await c.listDomains({ active: false, inactive: true })).map((d) => d.name), ['idle']);
    } finally {
      await c.close();
    }
  });

  void it('an active domain in ---s-- is shut off with 0 current memory', async () => {
    const c = await xendOnly();
    const web = f.fx.host.get('web');
    const was = web.status;
    try {
      web.status = 'shutdown';
      const xend = await import('../../../src/drivers/xen/xend.ts');
      const client = await xend.XendClient.open({ address: f.fx.paths.xendSocket, timeoutMs: 2000, maxResponseBytes: 1 << 20, logger: silentLogger });
      const sx = await client.get('/xend/domain/web?detail=1');
      await client.close();
      assert.match(JSON.stringify(sx), /"---s--"/);
      const info = await c.domainInfo('web');
      assert.equal(info.state, 'shutoff');
      assert.equal(info.memoryBytes, 0);
      const bulk = await c.allDomainStats({ groups: ['state', 'memory'] });
      const d = bulk.domains.find((x) => x.info.name === 'web');
      assert.equal(d?.info.state, 'shutoff');
      assert.equal(d?.memory?.currentBytes, 0);
      assert.ok((d?.memory?.maximumBytes ?? 0) > 0, 'maximum memory stays');
    } finally {
      web.status = was;
      await c.close();
    }
  });
});
