import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FailureLog } from '../../src/telemetry/failure-log.ts';
import { createLogger } from '../../src/util/logger.ts';

function setup() {
  let now = 1_000_000;
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level: 'debug', format: 'json', write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) });
  const log = new FailureLog({ logger, initialMs: 60_000, maxMs: 240_000, now: () => now });
  return { log, lines, advance: (ms: number) => (now += ms) };
}

void describe('FailureLog', () => {
  void it('logs the first failure, then once per doubling quiet period, counting what it suppressed', () => {
    const { log, lines, advance } = setup();
    // One failure every 10 s for 20 minutes.
    for (let i = 0; i < 120; i++) {
      log.failure(new Error('connect ECONNREFUSED'));
      advance(10_000);
    }
    const warned = lines.filter((l) => l.msg === 'OTLP push failed');
    // Logged at t=0, then after 60 s, 120 s, 240 s, 240 s, ... of quiet: 0, 60, 180, 420, 660, 900, 1140 s.
    assert.deepEqual(warned.map((l) => l.consecutive_failures), [1, 7, 19, 43, 67, 91, 115]);
    assert.deepEqual(warned.map((l) => l.suppressed), [0, 5, 11, 23, 23, 23, 23]);
    assert.equal(warned[0]?.err, 'connect ECONNREFUSED');
    assert.equal(log.failures, 120);
  });

  void it('logs recovery once and starts over', () => {
    const { log, lines, advance } = setup();
    log.failure('boom');
    log.failure('boom');
    log.success();
    log.success();
    assert.deepEqual(lines.map((l) => l.msg), ['OTLP push failed', 'OTLP push recovered']);
    assert.equal(lines[1]?.failed_pushes, 2);
    assert.equal(log.failures, 0);
    advance(1);
    log.failure('again');
    assert.equal(lines.filter((l) => l.msg === 'OTLP push failed').length, 2, 'a new outage is reported at once');
  });
});
