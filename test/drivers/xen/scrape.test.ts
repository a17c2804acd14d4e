import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startExporter, type StartedExporter } from '../../helpers/exporter.ts';
import { promtoolCheck } from '../../helpers/promtool.ts';
import { buildNative, startXenFixture, type XenFixture } from './fixture.ts';

function flags(f: XenFixture, privileged: 'root' | 'user'): string[] {
  return ['--connect=xen:///', ...Object.entries({ ...f.settings, 'xen.privileged': privileged }).map(([k, v]) => `--${k}=${v}`)];
}

async function scrape(e: StartedExporter): Promise<string> {
  const res = await fetch(`${e.url}/metrics`, { signal: AbortSignal.timeout(20_000) });
  assert.equal(res.status, 200);
  return res.text();
}

/** Domain series only (exporter self-metrics such as scrape durations differ run to run). */
function domainSeries(text: string): string[] {
  return text.split('\n').filter((l) => /^virt_domain_/.test(l)).sort();
}

void describe('scrape of xen:/// against the fake host', () => {
  let f: XenFixture;
  const exporters: StartedExporter[] = [];
  before(async () => {
    await buildNative();
    f = await startXenFixture();
    await f.startProxyDaemon();
    f.fx.host.advance(12);
    await f.fx.host.flushed();
  });
  after(async () => {
    for (const e of exporters) await e.stop();
    await f?.stop();
  });

  void it('as root (virt-proxy --stdio) and non-root (proxy socket): same domains, states and counters; promtool-clean', async () => {
    const env = { VIRT_FAKE_XEN_STATE: f.fx.paths.stateFile };
    const root = await startExporter(flags(f, 'root'), env);
    exporters.push(root);
    const user = await startExporter(flags(f, 'user'), env);
    exporters.push(user);
    const a = await scrape(root);
    const b = await scrape(user);
    await promtoolCheck(a);
    await promtoolCheck(b);
    const sa = domainSeries(a);
    assert.ok(sa.length > 0, `no domain series in:\n${a.slice(0, 2000)}`);
    assert.deepEqual(domainSeries(b), sa);
    for (const name of ['Domain-0', 'web', 'db']) assert.ok(sa.some((l) => l.includes(`domain="${name}"`)), `${name} is scraped`);
    assert.ok(sa.some((l) => l.includes('domain="db"') && l.includes('uuid="c0ffee00-1234-4abc-8def-0123456789ab"')));
    assert.match(root.log(), /"subs":"hypervisor,xend,xenstore"/);
    assert.match(user.log(), /"subs":"proxy,xend,xenstore"/);
  });
});
