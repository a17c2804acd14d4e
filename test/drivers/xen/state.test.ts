import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { xenFlagsToState, xenShutdownReason } from '../../../src/drivers/xen/state.ts';
import { XEN_DOMINF, XEN_DOMINF_SHUTDOWN_SHIFT } from '../../../src/drivers/xen/types.ts';

const F = XEN_DOMINF;
const reason = (r: number): number => r << XEN_DOMINF_SHUTDOWN_SHIFT;

void describe('xenFlagsToState', () => {
  void it('maps each flag bit on its own', () => {
    const table: Array<[string, number, string, string]> = [
      ['none (runnable, waiting for a CPU)', 0, 'running', 'runnable'],
      ['dying', F.dying, 'shutdown', 'dying'],
      ['hvm_guest alone', F.hvm_guest, 'running', 'runnable'],
      ['shutdown (poweroff)', F.shutdown, 'shutoff', 'poweroff'],
      ['paused', F.paused, 'paused', 'paused'],
      ['blocked', F.blocked, 'blocked', 'blocked'],
      ['running', F.running, 'running', 'running'],
      ['debugged alone', F.debugged, 'running', 'runnable'],
      ['xs_domain alone', F.xs_domain, 'running', 'runnable'],
      ['hap alone', F.hap, 'running', 'runnable'],
    ];
    for (const [what, flags, state, why] of table) assert.deepEqual(xenFlagsToState(flags), { state, reason: why }, what);
  });

  void it('maps every shutdown reason', () => {
    const table: Array<[number, string, string]> = [
      [0, 'shutoff', 'poweroff'],
      [1, 'shutoff', 'reboot'],
      [2, 'shutoff', 'suspend'],
      [3, 'crashed', 'crash'],
      [4, 'crashed', 'watchdog'],
      [5, 'shutoff', 'soft_reset'],
      [6, 'shutoff', 'reason-6'],
      [255, 'shutoff', 'reason-255'],
    ];
    for (const [r, state, why] of table) {
      assert.deepEqual(xenFlagsToState(F.shutdown | reason(r)), { state, reason: why }, `reason ${r}`);
      assert.equal(xenShutdownReason(F.shutdown | reason(r)), why);
    }
  });

  void it('ignores a shutdown reason without the shutdown flag', () => {
    assert.deepEqual(xenFlagsToState(F.running | reason(3)), { state: 'running', reason: 'running' });
    assert.deepEqual(xenFlagsToState(F.blocked | reason(3)), { state: 'blocked', reason: 'blocked' });
  });

  void it('maps combinations by precedence (the cases libvirt sent to NOSTATE)', () => {
    const table: Array<[string, number, string]> = [
      ['paused+blocked', F.paused | F.blocked, 'paused'],
      ['paused+running', F.paused | F.running, 'paused'],
      ['running+blocked (one vCPU on a CPU)', F.running | F.blocked, 'running'],
      ['hvm+running', F.hvm_guest | F.running, 'running'],
      ['hvm+blocked', F.hvm_guest | F.blocked, 'blocked'],
      ['hvm+hap+paused', F.hvm_guest | F.hap | F.paused, 'paused'],
      ['debugged+running', F.debugged | F.running, 'running'],
      ['dying+running', F.dying | F.running, 'shutdown'],
      ['dying+paused', F.dying | F.paused, 'shutdown'],
      ['dying+shutdown(poweroff)', F.dying | F.shutdown, 'shutoff'],
      ['dying+shutdown(crash)', F.dying | F.shutdown | reason(3), 'crashed'],
      ['shutdown(crash)+paused', F.shutdown | F.paused | reason(3), 'crashed'],
      ['shutdown(reboot)+blocked', F.shutdown | F.blocked | reason(1), 'shutoff'],
      ['hvm+shutdown(watchdog)', F.hvm_guest | F.shutdown | reason(4), 'crashed'],
      ['every bit, crash', 0x1ff | reason(3), 'crashed'],
    ];
    for (const [what, flags, state] of table) assert.equal(xenFlagsToState(flags).state, state, what);
  });

  void it('agrees with the precedence rule for all 512 low-flag combinations', () => {
    for (let flags = 0; flags < 512; flags++) {
      const { state } = xenFlagsToState(flags);
      const want = flags & F.shutdown ? 'shutoff' : flags & F.dying ? 'shutdown' : flags & F.paused ? 'paused' : flags & F.running ? 'running' : flags & F.blocked ? 'blocked' : 'running';
      assert.equal(state, want, `flags 0x${flags.toString(16)}`);
    }
  });

  void it('rejects values that are not u32 flags', () => {
    for (const bad of [-1, 1.5, 2 ** 32, Number.NaN]) assert.throws(() => xenFlagsToState(bad), RangeError, String(bad));
  });
});
