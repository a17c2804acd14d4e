// What each way of reading N running domains through libvirtd costs: the
// monitor stats groups (what the libvirt driver asks today) against
// per-domain procedures that libvirtd answers from /proc and its own state
// (domain-get-info, domain-get-vcpus) plus one domain-block-stats per disk.
// N running no-OS domains under a private libvirtd; each route read REPS
// times, routes alternating; CPU of libvirtd, the QEMUs and this client per
// read, from /proc (idle rates subtracted; QEMU outside its vCPU threads,
// where the monitor is answered). An experiment for docs/libvirt.md,
// not part of `npm run bench`.
//
//   node_modules/.bin/node bench/libvirt-routes.ts [--domains 30] [--reps 20]
import { parseArgs } from 'node:util';
import { LibvirtClient } from '../src/drivers/libvirt/client.ts';
import { Proc, readAllDomainStats, StatsFlag, StatsType, writeDomain, STRING_MAX, type WireDomain } from '../src/drivers/libvirt/protocol.ts';
import type { XdrReader, XdrWriter } from '../src/drivers/libvirt/xdr.ts';
import { PrivateLibvirtd } from '../test/drivers/libvirt/daemon.ts';
import { libvirtQemuPids, qemuTicks, startNoOsDomain, ticks, TICK } from './compare-stacks.ts';
import { sleep } from './measure.ts';

const { values: opts } = parseArgs({ options: { domains: { type: 'string', default: '30' }, reps: { type: 'string', default: '20' } } });
const N = Number(opts.domains);
const REPS = Number(opts.reps);
const PROC_DOMAIN_GET_VCPUS = 20;
const PROC_DOMAIN_BLOCK_STATS = 64;

const lv = await PrivateLibvirtd.start();
try {
  for (let i = 0; i < N; i++) {
    await startNoOsDomain(lv, `route-${i}`, false);
  }
  await sleep(5000);
  const qemus = libvirtQemuPids(lv);
  const client = new LibvirtClient({ socketPath: lv.roSocket, name: 'qemu:///system', readOnly: true, maxMessageBytes: 32 << 20, connectTimeoutMs: 5000, keepaliveIntervalMs: 5000, keepaliveCount: 5 });
  const co = { timeoutMs: 30_000 };
  await client.connect(co);
  const domArg = (d: WireDomain) => (w: XdrWriter) => writeDomain(w, d);
  const statsArgs = (doms: readonly WireDomain[], types: number, flags: number) => (w: XdrWriter) => {
    w.uint(doms.length);
    for (const d of doms) writeDomain(w, d);
    w.uint(types).uint(flags);
  };
  const cheap = () => client.call(Proc.CONNECT_GET_ALL_DOMAIN_STATS, statsArgs([], StatsType.STATE | StatsType.INTERFACE, StatsFlag.NOWAIT | StatsFlag.ACTIVE), readAllDomainStats, co);
  const quarter = <T>(xs: T[]): T[][] => [0, 1, 2, 3].map((k) => xs.filter((_, i) => i % 4 === k)).filter((p) => p.length > 0);
  const groups = (types: number) => async () => {
    const recs = await cheap();
    await Promise.all(quarter(recs.map((r) => r.dom)).map((p) => client.call(Proc.CONNECT_GET_ALL_DOMAIN_STATS, statsArgs(p, types, StatsFlag.NOWAIT), readAllDomainStats, co)));
  };
  const info = (r: XdrReader) => [r.uint(), r.uhyper(), r.uhyper(), r.uint(), r.uhyper()];
  const vcpus = (r: XdrReader) => {
    const n = r.uint();
    for (let i = 0; i < n; i++) {
      r.uint();
      r.int();
      r.uhyper();
      r.int();
    }
    return r.opaque(1 << 20);
  };
  const block = (r: XdrReader) => [r.hyper(), r.hyper(), r.hyper(), r.hyper(), r.hyper()];
  const perDomain = (withVcpus: boolean, withInfo: boolean) => async () => {
    const recs = await cheap();
    await Promise.all(
      recs.flatMap((rec) => [
        ...(withInfo ? [client.call(Proc.DOMAIN_GET_INFO, domArg(rec.dom), info, co)] : []),
        ...(withVcpus ? [client.call(PROC_DOMAIN_GET_VCPUS, (w) => { writeDomain(w, rec.dom); w.int(1).int(1); }, vcpus, co)] : []),
        client.call(PROC_DOMAIN_BLOCK_STATS, (w) => { writeDomain(w, rec.dom); w.string('vda', STRING_MAX); }, block, co),
      ]),
    );
  };
  const routes: [string, () => Promise<unknown>][] = [
    ['stats groups cpu-total,vcpu,balloon,block (today)', groups(StatsType.CPU_TOTAL | StatsType.VCPU | StatsType.BALLOON | StatsType.BLOCK)],
    ['stats group block only', groups(StatsType.BLOCK)],
    ['stats groups cpu-total,vcpu', groups(StatsType.CPU_TOTAL | StatsType.VCPU)],
    ['stats group balloon only', groups(StatsType.BALLOON)],
    ['get-info + get-vcpus + block-stats per domain', perDomain(true, true)],
    ['get-info + block-stats per domain', perDomain(false, true)],
    ['block-stats per domain', perDomain(false, false)],
    ['monitor-free call only', cheap],
  ];
  const cost = routes.map(() => ({ ms: [] as number[], lvd: 0, qemu: 0, me: 0 }));
  // Idle rates first.
  const i0 = { l: ticks(lv.pid), q: qemus.reduce((a, p) => a + qemuTicks(p), 0), t: performance.now() };
  await sleep(10_000);
  const idleL = (ticks(lv.pid) - i0.l) / ((performance.now() - i0.t) / 1000);
  const idleQ = (qemus.reduce((a, p) => a + qemuTicks(p), 0) - i0.q) / ((performance.now() - i0.t) / 1000);
  for (let rep = 0; rep < REPS; rep++) {
    for (const [k, [, fn]] of routes.entries()) {
      const c = cost[k];
      if (c === undefined) continue;
      const l0 = ticks(lv.pid);
      const q0 = qemus.reduce((a, p) => a + qemuTicks(p), 0);
      const m0 = process.cpuUsage();
      const t0 = performance.now();
      await fn();
      const dt = performance.now() - t0;
      await sleep(150); // let libvirtd's and QEMU's ticks settle
      const el = (performance.now() - t0) / 1000;
      c.ms.push(dt);
      c.lvd += ticks(lv.pid) - l0 - idleL * el;
      c.qemu += qemus.reduce((a, p) => a + qemuTicks(p), 0) - q0 - idleQ * el;
      const m = process.cpuUsage(m0);
      c.me += (m.user + m.system) / 1000;
    }
  }
  process.stdout.write(`${N} running domains, ${REPS} reads per route; idle libvirtd ${((idleL / TICK) * 1000).toFixed(1)} ms/s, QEMUs ${((idleQ / TICK) * 1000).toFixed(1)} ms/s\n`);
  process.stdout.write('| route | p50 ms | max ms | libvirtd CPU ms/read | QEMU CPU ms/read | client CPU ms/read | total |\n|---|---:|---:|---:|---:|---:|---:|\n');
  for (const [k, [name]] of routes.entries()) {
    const c = cost[k];
    if (c === undefined) continue;
    const ms = [...c.ms].sort((a, b) => a - b);
    const l = ((c.lvd / TICK) * 1000) / REPS;
    const q = ((c.qemu / TICK) * 1000) / REPS;
    const me = c.me / REPS;
    process.stdout.write(`| ${name} | ${ms[ms.length >> 1]?.toFixed(1)} | ${ms[ms.length - 1]?.toFixed(1)} | ${l.toFixed(1)} | ${q.toFixed(1)} | ${me.toFixed(1)} | ${(l + q + me).toFixed(1)} |\n`);
  }
  client.close();
} finally {
  await lv.stop();
}
process.exit(0);
