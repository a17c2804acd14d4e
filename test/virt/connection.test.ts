import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Driver } from '../../src/drivers/driver.ts';
import { WRITE_OPERATIONS } from '../../src/drivers/driver.ts';
import { connectionFor, open } from '../../src/virt/connection.ts';
import { isVirtError } from '../../src/virt/errors.ts';
import { parseUri } from '../../src/virt/uri.ts';

function recordingDriver(calls: string[]): Driver {
  const op = (name: string) => () => {
    calls.push(name);
    return Promise.resolve(undefined as never);
  };
  const d: Record<string, unknown> = { name: 'rec' };
  for (const w of WRITE_OPERATIONS) d[w] = op(w);
  d.listDomains = () => Promise.resolve([]);
  return d as unknown as Driver;
}

void describe('Connection (front-end)', () => {
  void it('refuses every state-changing operation on a read-only connection before dispatch', async () => {
    const calls: string[] = [];
    const conn = connectionFor(parseUri('test:///default'), recordingDriver(calls), true);
    const attempts: Array<() => Promise<unknown>> = [
      () => conn.define({}), () => conn.undefine('a'), () => conn.start('a'), () => conn.shutdown('a'), () => conn.reboot('a'),
      () => conn.destroy('a'), () => conn.suspend('a'), () => conn.resume('a'), () => conn.save('a', '/tmp/x'), () => conn.restore('/tmp/x'),
    ];
    assert.equal(attempts.length, WRITE_OPERATIONS.size);
    for (const attempt of attempts) {
      await assert.rejects(attempt(), (err: unknown) => isVirtError(err, 'VIRT_ERR_OPERATION_DENIED'));
    }
    assert.deepEqual(calls, [], 'no write reached the driver');
    assert.deepEqual(await conn.listDomains(), []);
  });

  void it('dispatches writes on a read-write connection', async () => {
    const calls: string[] = [];
    const conn = connectionFor(parseUri('test:///default'), recordingDriver(calls), false);
    await conn.suspend('a');
    assert.deepEqual(calls, ['suspend']);
  });

  void it('turns a missing table entry into VIRT_ERR_NO_SUPPORT naming driver and operation', async () => {
    const conn = connectionFor(parseUri('test:///default'), { name: 'tiny' }, false);
    await assert.rejects(conn.hostInfo(), (err: unknown) => {
      assert.ok(isVirtError(err, 'VIRT_ERR_NO_SUPPORT'));
      assert.match(err.message, /hostInfo/);
      assert.match(err.message, /tiny/);
      return true;
    });
    assert.equal(conn.supports('hostInfo'), false);
  });

  void it('wraps a driver crash into a VirtError and refuses use after close', async () => {
    const conn = connectionFor(parseUri('test:///default'), { name: 'boom', hostInfo: () => Promise.reject(new TypeError('kaputt')) }, true);
    await assert.rejects(conn.hostInfo(), (err: unknown) => isVirtError(err, 'VIRT_ERR_OPERATION_FAILED'));
    await conn.close();
    await assert.rejects(conn.hostInfo(), (err: unknown) => isVirtError(err, 'VIRT_ERR_INVALID_CONN'));
  });

  void it('open() parses the URI first', async () => {
    await assert.rejects(open('bogus:///', { readOnly: true }), (err: unknown) => isVirtError(err, 'VIRT_ERR_INVALID_URI'));
  });
});
