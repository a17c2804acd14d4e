import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, it } from 'node:test';
import { cpuinfoMhz, hostCpuMhz } from '../../src/qemud/host-cpu.ts';
import { open } from '../../src/virt/connection.ts';
import { requireBinaries, sandbox, startDaemon, type Sandbox } from './helpers.ts';

const boxes: Sandbox[] = [];
after(async () => {
  for (const b of boxes) await b.cleanup();
});

void it('the CPU frequency comes from /proc/cpuinfo, then cpufreq, then os.cpus()', () => {
  assert.equal(cpuinfoMhz('processor\t: 0\ncpu MHz\t\t: 2596.122\n'), 2596);
  assert.equal(cpuinfoMhz('processor\t: 0\n'), undefined);
  const files = (m: Record<string, string>) => (p: string) => m[p];
  assert.equal(hostCpuMhz(files({ '/proc/cpuinfo': 'cpu MHz : 1800.4\n' }), 0), 1800);
  assert.equal(hostCpuMhz(files({ '/proc/cpuinfo': '', '/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq': '3400000\n' }), 0), 3400);
  assert.equal(hostCpuMhz(files({}), 2200), 2200);
  assert.equal(hostCpuMhz(files({}), 0), 0);
});

void it('virt-qemud reports the frequency /proc/cpuinfo has (qemu:///session hostInfo)', async () => {
  requireBinaries('qemu-system-x86_64');
  const expected = cpuinfoMhz(readFileSync('/proc/cpuinfo', 'latin1'));
  const sb = sandbox();
  boxes.push(sb);
  await startDaemon(sb);
  const conn = await open('qemu:///session', { readOnly: true, settings: { 'qemu.runtime-dir': sb.runtimeDir } });
  try {
    const h = await conn.hostInfo();
    if (expected === undefined) assert.equal(h.mhz, hostCpuMhz());
    else assert.equal(h.mhz, expected);
  } finally {
    await conn.close();
  }
});
