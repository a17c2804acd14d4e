// Where a libvirtd connect-get-all-domain-stats call spends its time: N paused
// (or running) no-OS domains under a private libvirtd, `virsh domstats` timed
// per stats group, with and without --backing, plus libvirtd's and the QEMUs'
// CPU per call (from /proc).
//
//   node_modules/.bin/node bench/libvirt-profile.ts [--domains 30] [--reps 10] [--state paused|running]
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { PrivateLibvirtd } from '../test/drivers/libvirt/daemon.ts';
import { libvirtQemuPids, startNoOsDomain, ticks, TICK } from './compare-stacks.ts';

const { values: opts } = parseArgs({ options: { domains: { type: 'string', default: '30' }, reps: { type: 'string', default: '10' }, state: { type: 'string', default: 'paused' } } });
const N = Number(opts.domains);
const REPS = Number(opts.reps);
const lv = await PrivateLibvirtd.start();
try {
  for (let i = 0; i < N; i++) {
    await startNoOsDomain(lv, `prof-${i}`, opts.state === 'paused');
  }
  const qemus = libvirtQemuPids(lv);
  const sets: string[][] = [[], ['--state'], ['--cpu-total'], ['--balloon'], ['--vcpu'], ['--interface'], ['--block'], ['--block', '--backing'], ['--state', '--cpu-total', '--balloon', '--vcpu', '--interface', '--block'], ['--state', '--cpu-total', '--vcpu', '--interface', '--block'], ['--state', '--cpu-total', '--interface', '--block'], ['--nowait', '--state', '--cpu-total', '--balloon', '--vcpu', '--interface', '--block']];
  const uri = lv.uri();
  for (const args of sets) {
    const ms: number[] = [];
    const d0 = ticks(lv.pid);
    const q0 = qemus.reduce((a, p) => a + ticks(p), 0);
    for (let r = 0; r < REPS; r++) {
      const t = performance.now();
      const out = spawnSync('virsh', ['-q', '-c', uri, 'domstats', '--raw', ...args], { encoding: 'utf8' });
      if (out.status !== 0) throw new Error(out.stderr);
      ms.push(performance.now() - t);
    }
    const d = ((ticks(lv.pid) - d0) / TICK / REPS) * 1000;
    const q = ((qemus.reduce((a, p) => a + ticks(p), 0) - q0) / TICK / REPS) * 1000;
    ms.sort((a, b) => a - b);
    process.stdout.write(`${(args.join(' ') || '(default: all)').padEnd(70)} median ${ms[Math.floor(ms.length / 2)]?.toFixed(1)} ms  min ${ms[0]?.toFixed(1)}  libvirtd ${d.toFixed(1)} ms  qemu ${q.toFixed(1)} ms\n`);
  }
  // Idle rates over 5 s.
  const d0 = ticks(lv.pid);
  const q0 = qemus.reduce((a, p) => a + ticks(p), 0);
  await new Promise((r) => setTimeout(r, 5000));
  process.stdout.write(`idle per s: libvirtd ${(((ticks(lv.pid) - d0) / TICK / 5) * 1000).toFixed(1)} ms, qemu (all) ${(((qemus.reduce((a, p) => a + ticks(p), 0) - q0) / TICK / 5) * 1000).toFixed(1)} ms\n`);
} finally {
  await lv.stop();
}
