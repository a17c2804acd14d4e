// The benchmarks run, at the smallest sizes: each prints its table (a
// benchmark nobody runs between measuring days breaks unseen: bench/qemu.ts
// restarted every guest forever, bench/idle.ts had its disks refused). Only
// that they finish and print rows is asserted: figures are never judged here
// (docs/benchmarks.md holds the measured ones). The real-Xen lab benchmark is
// left out: its lab boots in test/drivers/xen/lab.test.ts already.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { NODE, ROOT } from '../helpers/exporter.ts';

const execFileP = promisify(execFile);

async function bench(script: string, args: string[]): Promise<string> {
  const { stdout } = await execFileP(NODE, [`${ROOT}bench/${script}`, ...args], { cwd: ROOT, timeout: 300_000, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

void describe('benchmarks run at their smallest sizes', { concurrency: 1 }, () => {
  void it('bench/test-host.ts prints a row per size', async () => {
    const out = await bench('test-host.ts', ['--sizes', '5,20', '--scrapes', '10', '--rounds', '1']);
    assert.match(out, /^\| 5 \| \d+ \|/m);
    assert.match(out, /^\| 20 \| \d+ \|/m);
  });

  void it('bench/xen.ts prints a row for the Xend stand-in', async () => {
    const out = await bench('xen.ts', ['--sizes', '5', '--scrapes', '5']);
    assert.match(out, /^\| 5 \| \d+ \| \d+ \|/m);
  });

  void it('bench/idle.ts prints the idle cost of the exporter and of virt-qemud', async () => {
    const out = await bench('idle.ts', ['--window', '5', '--rounds', '1', '--domains', '1']);
    assert.match(out, /exporter \+ virt-qemud/);
  });

  void it('bench/qemu.ts measures paused no-OS domains under virt-qemud', async () => {
    const out = await bench('qemu.ts', ['--kinds', 'nos', '--sizes', '2', '--modes', 'paused', '--rounds', '1', '--reads', '10', '--scrapes', '10', '--idle', '1']);
    assert.match(out, /^\| nos \| paused \| 2 \|/m);
  });

  void it('bench/qemu.ts boots a real guest kernel and measures it running', async () => {
    const out = await bench('qemu.ts', ['--kinds', 'guest', '--sizes', '1', '--modes', 'running', '--rounds', '1', '--reads', '10', '--scrapes', '10', '--idle', '1']);
    assert.match(out, /^\| guest \| running \| 1 \|/m);
  });
});
