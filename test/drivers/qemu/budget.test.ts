import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { supervisorBudget } from '../../../src/drivers/qemu.ts';

void describe('supervisorBudget: how long virt-qemud may spend on a bulk read', () => {
  const now = 1_000_000;
  void it('without a deadline: the read timeout less the round-trip margin', () => {
    assert.equal(supervisorBudget(10_000, undefined, now), 9_750);
    assert.equal(supervisorBudget(200, undefined, now), 100);
  });
  void it('fits inside the caller\'s deadline with a margin, whatever the deadline', () => {
    for (const left of [5_000, 2_000, 700, 300, 100]) {
      const b = supervisorBudget(10_000, now + left, now);
      assert.ok(b < left, `${b} ms budget for ${left} ms left`);
      assert.ok(b >= Math.min(left * 0.8, left - 50) - 1, `${b} ms budget wastes too much of ${left} ms`);
    }
  });
  void it('never exceeds its own read timeout, and never goes to zero past the deadline', () => {
    assert.equal(supervisorBudget(1_000, now + 60_000, now), 750);
    assert.equal(supervisorBudget(10_000, now - 5, now), 20);
  });
});
