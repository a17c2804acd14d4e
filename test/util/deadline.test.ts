import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { armDeadline, parseDuration, withDeadline, withTimeout } from '../../src/util/deadline.ts';
import { isVirtError } from '../../src/virt/errors.ts';

void describe('parseDuration', () => {
  void it('reads single and compound durations into milliseconds', () => {
    const cases: Array<[string, number]> = [
      ['250ms', 250],
      ['5s', 5000],
      ['1.5s', 1500],
      ['30', 30_000],
      ['1m', 60_000],
      ['2h', 7_200_000],
      ['1h30m', 5_400_000],
      ['1m30s500ms', 90_500],
      ['1d', 86_400_000],
      ['0', 0],
      [' 10s ', 10_000],
    ];
    for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
  });
  void it('refuses anything else with VIRT_ERR_CONFIG', () => {
    for (const bad of ['', 'soon', '5 s', '-1s', '1.5h30m', 's', '1e3', '9'.repeat(30) + 'y']) {
      assert.throws(() => parseDuration(bad), (e: unknown) => isVirtError(e, 'VIRT_ERR_CONFIG'), bad);
    }
  });
});

void describe('deadlines', () => {
  void it('armDeadline fires once on the timer or the signal, and not after it is disarmed', async () => {
    const fired: boolean[] = [];
    armDeadline(10, undefined, (aborted) => fired.push(aborted));
    const ac = new AbortController();
    armDeadline(60_000, ac.signal, (aborted) => fired.push(aborted))();
    const ac2 = new AbortController();
    const disarm = armDeadline(60_000, ac2.signal, (aborted) => fired.push(aborted));
    ac2.abort();
    disarm();
    ac.abort();
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(fired, [true, false]);
  });
  void it('withDeadline and withTimeout reject with VIRT_ERR_OPERATION_TIMEOUT and pass outcomes through', async () => {
    const never = new Promise<number>(() => undefined);
    // AbortSignal.timeout does not hold the event loop open; this test must wait for it.
    const hold = setTimeout(() => undefined, 10_000);
    await assert.rejects(withTimeout(never, 20, 'a wait'), (e: unknown) => isVirtError(e, 'VIRT_ERR_OPERATION_TIMEOUT'));
    clearTimeout(hold);
    await assert.rejects(withDeadline(never, AbortSignal.abort(), 'a wait'), (e: unknown) => isVirtError(e, 'VIRT_ERR_OPERATION_TIMEOUT'));
    assert.equal(await withTimeout(Promise.resolve(7), 1000, 'a wait'), 7);
    await assert.rejects(withTimeout(Promise.reject(new RangeError('x')), 1000, 'a wait'), RangeError);
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- a non-Error rejection is what is tested
    const text = Promise.reject('text');
    await assert.rejects(withTimeout(text, 1000, 'a wait'), (e: unknown) => isVirtError(e, 'VIRT_ERR_INTERNAL_ERROR'));
  });
});
