/**
 * The libvirt driver against real QEMU domains (TCG, no OS, 64 MiB) started by
 * a private libvirtd: /metrics agrees with `virsh domstats --raw`, lifecycle
 * events keep a steady-state scrape free of per-domain calls (one stats call
 * for the states, the running domains' QEMUs asked in a few concurrent
 * calls, paused ones held until an event of theirs), a stopped daemon costs the
 * deadline and nothing else, a restarted one is reconnected to.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { openLibvirtDriver, type LibvirtDriver } from '../../../src/drivers/libvirt/driver.ts';
import { STATS_CALLS_MAX } from '../../../src/drivers/libvirt/bulk.ts';
import { Collection } from '../../../src/collectors/collection.ts';
import { COLLECTORS } from '../../../src/collectors/catalogue.ts';
import { connectionFor, open } from '../../../src/virt/connection.ts';
import { isVirtError } from '../../../src/virt/errors.ts';
import { LibvirtError } from '../../../src/drivers/libvirt/protocol.ts';
import { parseUri } from '../../../src/virt/uri.ts';
import { silentLogger } from '../../../src/util/logger.ts';
import { parseMetrics, scrape, startExporter, valueOf, type ParsedSample, type StartedExporter } from '../../helpers/exporter.ts';
import { domainXml, PrivateLibvirtd } from './daemon.ts';

type Raw = Map<string, Map<string, string>>;

function parseDomstats(text: string): Raw {
  const out: Raw = new Map();
  let cur: Map<string, string> | undefined;
  for (const line of text.split('\n')) {
    const d = /^Domain: '(.*)'$/.exec(line.trim());
    if (d !== null) {
      cur = new Map();
      out.set(d[1] ?? '', cur);
      continue;
    }
    const kv = /^\s+([^=]+)=(.*)$/.exec(line);
    if (kv !== null && cur !== undefined) cur.set(kv[1] ?? '', kv[2] ?? '');
  }
  return out;
}

function raw(r: Raw, dom: string, key: string): number {
  const v = r.get(dom)?.get(key);
  if (v === undefined) throw new Error(`virsh domstats has no ${key} for ${dom}`);
  return Number(v);
}

const NOVA = '<nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1"><nova:name>web-1</nova:name><nova:flavor name="m1.tiny"/><nova:owner><nova:user uuid="u-9">alice</nova:user><nova:project uuid="p-9">demo</nova:project></nova:owner></nova:instance>';

const STATES = ['nostate', 'running', 'blocked', 'paused', 'shutdown', 'shutoff', 'crashed', 'pmsuspended'];

void describe('libvirt driver against a private libvirtd and real QEMU', { timeout: 300_000 }, () => {
  let lv: PrivateLibvirtd;
  let exporter: StartedExporter;
  const tap = `vxl${randomBytes(3).toString('hex')}`;

  before(async () => {
    lv = await PrivateLibvirtd.start();
    const disk1 = await lv.qemuImg('run.qcow2');
    const disk2 = await lv.qemuImg('pause.qcow2');
    const defs: Array<[string, string]> = [
      ['lv-run', domainXml({ name: 'lv-run', disk: disk1, userNic: true, tap, metadata: NOVA })],
      ['lv-pause', domainXml({ name: 'lv-pause', disk: disk2 })],
      ['lv-off', domainXml({ name: 'lv-off' })],
    ];
    for (const [name, xml] of defs) {
      const file = `${lv.dir}/${name}.xml`;
      const { writeFileSync } = await import('node:fs');
      writeFileSync(file, xml);
      await lv.virsh(['define', file]);
    }
    await lv.virsh(['start', 'lv-run']);
    await lv.virsh(['start', '--paused', 'lv-pause']);
    exporter = await startExporter(['--connect', `libvirt+qemu:///system?socket=${lv.rwSocket}`, '--collect.timeout', '2s', '--libvirt.keepalive-interval-ms', '1000', '--libvirt.keepalive-count', '3', '--libvirt.metadata-preset', 'nova-1.1', '--libvirt.metadata-labels', 'missing=http://example.com/none x/y']);
  });

  after(async () => {
    await exporter?.stop();
    await lv?.stop();
  });

  void it('serves what virsh domstats --raw reports at the same moment, in base units', async () => {
    const before0 = parseDomstats(await lv.virsh(['domstats', '--raw']));
    const m: ParsedSample[] = parseMetrics(await scrape(exporter.url));
    const after0 = parseDomstats(await lv.virsh(['domstats', '--raw']));
    assert.equal(valueOf(m, 'virt_up'), 1);
    assert.equal(valueOf(m, 'virt_domains'), 3);
    /** A moving counter lies between the readings virsh took before and after the scrape. */
    const within = (got: number, dom: string, key: string, factor: number): void => {
      const lo = raw(before0, dom, key) * factor;
      const hi = raw(after0, dom, key) * factor;
      assert.ok(got >= lo - 1e-9 && got <= hi + 1e-9, `${dom} ${key}: ${got} not within [${lo}, ${hi}]`);
    };
    for (const dom of ['lv-run', 'lv-pause', 'lv-off']) {
      const state = STATES[raw(after0, dom, 'state.state')] ?? '';
      assert.equal(valueOf(m, 'virt_domain_state', { domain: dom, state }), 1, `${dom} is ${state}`);
      assert.equal(m.filter((s) => s.name === 'virt_domain_state' && s.labels['domain'] === dom && s.value === 1).length, 1);
      const info = m.find((s) => s.name === 'virt_domain_info' && s.labels['domain'] === dom);
      assert.equal(info?.labels['os_type'], 'hvm');
      assert.equal(info?.labels['arch'], 'x86_64');
    }
    assert.equal(STATES[raw(after0, 'lv-pause', 'state.state')], 'paused');
    for (const dom of ['lv-run', 'lv-pause']) {
      const L = { domain: dom };
      assert.equal(valueOf(m, 'virt_domain_memory_maximum_bytes', L), raw(after0, dom, 'balloon.maximum') * 1024);
      assert.equal(valueOf(m, 'virt_domain_memory_current_bytes', L), raw(after0, dom, 'balloon.current') * 1024);
      assert.equal(valueOf(m, 'virt_domain_vcpus', L), raw(after0, dom, 'vcpu.current'));
      within(valueOf(m, 'virt_domain_cpu_time_seconds_total', L), dom, 'cpu.time', 1e-9);
      within(valueOf(m, 'virt_domain_vcpu_time_seconds_total', { ...L, vcpu: '0' }), dom, 'vcpu.0.time', 1e-9);
      if (after0.get(dom)?.has('vcpu.0.delay') === true) within(valueOf(m, 'virt_domain_vcpu_delay_seconds_total', { ...L, vcpu: '0' }), dom, 'vcpu.0.delay', 1e-9);
      within(valueOf(m, 'virt_domain_memory_rss_bytes', L), dom, 'balloon.rss', 1024);
      // No guest OS, so no balloon driver: guest figures are absent, not zero.
      assert.equal(m.filter((s) => s.name.startsWith('virt_domain_memory_guest_') && s.labels['domain'] === dom).length, 0);
      const dev = { ...L, device: 'vda' };
      assert.equal(valueOf(m, 'virt_domain_block_capacity_bytes', dev), raw(after0, dom, 'block.0.capacity'));
      within(valueOf(m, 'virt_domain_block_read_bytes_total', dev), dom, 'block.0.rd.bytes', 1);
      within(valueOf(m, 'virt_domain_block_read_requests_total', dev), dom, 'block.0.rd.reqs', 1);
      within(valueOf(m, 'virt_domain_block_read_time_seconds_total', dev), dom, 'block.0.rd.times', 1e-9);
      assert.ok(m.some((s) => s.name === 'virt_domain_block_info' && s.labels['domain'] === dom && s.labels['path']?.endsWith('.qcow2')));
    }
    // The tap NIC has counters (the guest's point of view, as libvirt reports them); the user-mode one only its info.
    const nic = { domain: 'lv-run', interface: tap };
    const idx = [...(after0.get('lv-run') ?? new Map<string, string>())].find(([k, v]) => /^net\.\d+\.name$/.test(k) && v === tap)?.[0].split('.')[1];
    assert.ok(idx !== undefined, `virsh domstats lists ${tap}`);
    within(valueOf(m, 'virt_domain_network_receive_bytes_total', nic), 'lv-run', `net.${idx}.rx.bytes`, 1);
    within(valueOf(m, 'virt_domain_network_transmit_packets_total', nic), 'lv-run', `net.${idx}.tx.pkts`, 1);
    assert.equal(valueOf(m, 'virt_domain_network_info', nic), 1);
    assert.equal(m.find((s) => s.name === 'virt_domain_network_info' && s.labels['interface'] === tap)?.labels['mac'], '52:54:00:10:00:02');
    const user = m.filter((s) => s.name === 'virt_domain_network_info' && s.labels['domain'] === 'lv-run' && s.labels['interface'] !== tap);
    assert.equal(user.length, 1);
    assert.equal(user[0]?.labels['mac'], '52:54:00:10:00:01');
    assert.equal(m.filter((s) => s.name === 'virt_domain_network_receive_bytes_total' && s.labels['interface'] === user[0]?.labels['interface']).length, 0);
    // <metadata> labels (Nova 1.1 preset plus one custom rule) on virt_domain_info only; missing elements give ''.
    assert.equal(valueOf(m, 'virt_domain_info', { domain: 'lv-run', instance_name: 'web-1', flavor: 'm1.tiny', user_id: 'u-9', user_name: 'alice', project_id: 'p-9', project_name: 'demo', missing: '' }), 1);
    assert.equal(valueOf(m, 'virt_domain_info', { domain: 'lv-pause', instance_name: '', project_name: '' }), 1);
    assert.equal(m.filter((s) => s.name !== 'virt_domain_info' && 'instance_name' in s.labels).length, 0);
    // Shut-off domains come from the same call, with no live readings.
    assert.equal(valueOf(m, 'virt_domain_memory_current_bytes', { domain: 'lv-off' }), 0);
    assert.equal(m.filter((s) => s.name === 'virt_domain_block_read_bytes_total' && s.labels['domain'] === 'lv-off').length, 0);
  });

  void it('lifecycle events: the next scrape shows every change, with stats calls only, and paused readings are held until an event', async () => {
    const uri = parseUri(`libvirt+qemu:///system?socket=${lv.rwSocket}`);
    const driver: LibvirtDriver = await openLibvirtDriver(uri, { readOnly: true, logger: silentLogger, settings: {} });
    const coll = new Collection(connectionFor(uri, driver, true), { collectors: new Set(COLLECTORS.filter((c) => c !== 'host')), timeoutMs: 10_000 });
    try {
      await coll.collect(); // warms the XML cache
      const once = async (): Promise<{ states: Map<string, string>; asked: number; running: number }> => {
        const snap = await coll.collect();
        assert.equal(snap.up, true);
        const cost = driver.lastBulk;
        // Counted on the wire: every RPC is a stats call (no per-domain XML fetch, no lookups).
        assert.equal(driver.lastBulkRpcs, cost.rpcs);
        assert.equal(cost.rpcs, cost.statsCalls, 'a steady-state scrape makes no per-domain call');
        // One call for every domain's state, plus the running domains' QEMUs asked in at most STATS_CALLS_MAX calls.
        assert.equal(cost.statsCalls, 1 + Math.min(STATS_CALLS_MAX, cost.monitorDomains));
        const running = snap.domains.filter((d) => d.info.state === 'running').length;
        assert.ok(cost.monitorDomains >= running);
        return { states: new Map(snap.domains.map((d) => [d.info.name, d.info.state])), asked: cost.monitorDomains, running };
      };
      /** A lifecycle event may trail virsh's reply by a moment: once it is in, paused domains are no longer asked. */
      const settled = async (): Promise<Map<string, string>> => {
        for (let i = 0; i < 5; i++) {
          const r = await once();
          if (r.asked === r.running) return r.states;
        }
        throw new Error('a paused domain was asked on every scrape: its reading is not held');
      };
      const stateOf = async (): Promise<Map<string, string>> => (await once()).states;
      assert.equal((await stateOf()).get('lv-run'), 'running');
      await settled();
      const steps: Array<[string[], string, string | undefined]> = [
        [['suspend', 'lv-run'], 'lv-run', 'paused'],
        [['resume', 'lv-run'], 'lv-run', 'running'],
        [['destroy', 'lv-pause'], 'lv-pause', 'shutoff'],
        [['start', 'lv-pause'], 'lv-pause', 'running'],
        [['undefine', 'lv-off'], 'lv-off', undefined],
      ];
      for (const [args, dom, want] of steps) {
        await lv.virsh(args);
        const states = await stateOf();
        assert.equal(states.get(dom), want, `after virsh ${args.join(' ')}`);
        assert.equal((await settled()).get(dom), want);
      }
      const snap = await coll.collect();
      assert.equal(snap.domains.length, 2);
      // The background refresh after 'start' leaves the cache with the live XML (user NIC alias net0).
      assert.ok(snap.domains.every((d) => d.info.osType === 'hvm'));
    } finally {
      await driver.close?.();
    }
  });

  void it('libvirt\'s refusals are typed: resuming a running domain is VIRT_ERR_OPERATION_INVALID with libvirt\'s code', async () => {
    const rw = await open(`libvirt+qemu:///system?socket=${lv.rwSocket}`, { readOnly: false });
    try {
      await assert.rejects(rw.resume('lv-run'), (e: unknown) => e instanceof LibvirtError && e.code === 'VIRT_ERR_OPERATION_INVALID' && e.libvirtCode === 55);
      await assert.rejects(rw.start('no-such'), (e: unknown) => isVirtError(e, 'VIRT_ERR_NO_DOMAIN'));
    } finally {
      await rw.close();
    }
  });

  void it('shutdown: ACPI, a typed timeout when the guest ignores it, destroyed after the grace period with force', async () => {
    const rw = await open(`libvirt+qemu:///system?socket=${lv.rwSocket}`, { readOnly: false, settings: { 'libvirt.shutdown-grace-seconds': 1 } });
    try {
      // No OS in the guest: nothing answers the ACPI power button.
      await assert.rejects(rw.shutdown('lv-pause'), (e: unknown) => isVirtError(e, 'VIRT_ERR_OPERATION_TIMEOUT'));
      assert.equal((await rw.domainInfo('lv-pause')).state, 'running');
      await rw.shutdown('lv-pause', { force: true });
      assert.equal((await rw.domainInfo('lv-pause')).state, 'shutoff');
      assert.match(await lv.virsh(['domstate', 'lv-pause']), /shut off/);
    } finally {
      await rw.close();
    }
  });

  void it('a stopped daemon: scrapes finish within the deadline with virt_up 0, and recover on SIGCONT', async () => {
    process.kill(lv.pid, 'SIGSTOP');
    try {
      for (let i = 0; i < 2; i++) {
        const t0 = Date.now();
        const m = parseMetrics(await scrape(exporter.url));
        const took = Date.now() - t0;
        assert.equal(valueOf(m, 'virt_up'), 0);
        assert.equal(valueOf(m, 'virt_collector_success', { collector: 'domain' }), 0);
        assert.ok(took < 15_000, `scrape took ${took} ms with a 2 s deadline`);
      }
    } finally {
      process.kill(lv.pid, 'SIGCONT');
    }
    await until(async () => valueOf(parseMetrics(await scrape(exporter.url)), 'virt_up') === 1, 'virt_up back to 1 after SIGCONT');
  });

  void it('a restarted daemon is reconnected to by itself, running domains and all', async () => {
    await lv.restart();
    await until(async () => {
      const m = parseMetrics(await scrape(exporter.url));
      return valueOf(m, 'virt_up') === 1 && valueOf(m, 'virt_domain_state', { domain: 'lv-run', state: 'running' }) === 1;
    }, 'virt_up 1 with lv-run running after the restart');
  });
});

async function until(check: () => Promise<boolean>, what: string, limitMs = 60_000): Promise<void> {
  const end = Date.now() + limitMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}: ${String(last)}`);
}
