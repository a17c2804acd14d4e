import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FailureLog } from '../../src/telemetry/failure-log.ts';
import { createLogger } from '../../src/util/logger.ts';

function setup() {
  let now = 1_000_000;
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level: 'debug', format: 'json', write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) });
  const log = new FailureLog({ logger, now: () => now });
  return { log, lines, advance: (ms: number) => (now += ms) };
}

void describe('FailureLog', () => {
  void it('logs an outage once, however many attempts fail', () => {
    const { log, lines, advance } = setup();
    // One failure every 10 s for 20 minutes.
    for (let i = 0; i < 120; i++) {
      log.failure(new Error('connect ECONNREFUSED'));
      advance(10_000);
    }
    assert.deepEqual(lines.map((l) => l.msg), ['OTLP push failed']);
    assert.equal(lines[0]?.err, 'connect ECONNREFUSED');
    assert.equal(lines[0]?.level, 'warn');
    assert.equal(log.failures, 120);
  });

  void it('logs recovery once, with the failures and the length of the outage, and starts over', () => {
    const { log, lines, advance } = setup();
    log.failure('boom');
    advance(30_000);
    log.failure('boom');
    log.success();
    log.success();
    assert.deepEqual(lines.map((l) => l.msg), ['OTLP push failed', 'OTLP push recovered']);
    assert.equal(lines[1]?.failed_pushes, 2);
    assert.equal(lines[1]?.outage_s, 30);
    assert.equal(log.failures, 0);
    log.failure('again');
    assert.equal(lines.filter((l) => l.msg === 'OTLP push failed').length, 2, 'a new outage is reported at once');
  });
});
