// The run-state table (src/qemud/monitor.ts nextState) replayed on recorded
// QMP sessions of real QEMU 7.2 (test/fixtures/qmp/*.jsonl), without a QEMU.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { SHUT_OFF, type RunStatus } from '../../src/qemud/domain.ts';
import { IO_ERROR_STOP_MS, nextState, type Effect, type RunEvent, type Transition } from '../../src/qemud/monitor.ts';
import { parseBalloon, parseQueryStatus } from '../../src/qemud/qmp-parse.ts';
import { events, loadSession, replyTo } from './qmp-session.ts';

/** Applies events in order, checking the table never changes its input; returns every transition. */
function run(start: RunStatus, evs: RunEvent[]): Transition[] {
  const out: Transition[] = [];
  let s = start;
  for (const ev of evs) {
    const before = JSON.stringify(s);
    const t = nextState(Object.freeze({ ...s }), ev);
    assert.equal(JSON.stringify(s), before, 'nextState changed its input');
    out.push(t);
    s = t.status;
  }
  return out;
}

const last = (ts: Transition[]): RunStatus => {
  const t = ts.at(-1);
  assert.ok(t !== undefined);
  return t.status;
};

const kinds = (effects: Effect[]): string[] => effects.map((e) => e.kind);

function attached(session: ReturnType<typeof loadSession>): RunStatus {
  const ts = run(SHUT_OFF, [
    { kind: 'launched', incoming: false },
    { kind: 'attached', status: parseQueryStatus(replyTo(session, 'query-status')), balloonBytes: parseBalloon(replyTo(session, 'query-balloon')) },
  ]);
  return last(ts);
}

void describe('run-state table on recorded QMP sessions', () => {
  void it('a domain without an OS: attach, stop, cont, reset and quit', () => {
    const session = loadSession('lifecycle-nos-7.2.jsonl');
    const up = attached(session);
    assert.equal(up.state, 'running');
    assert.equal(up.reason, 'booted');
    assert.equal(up.balloonBytes, 64 * 1024 * 1024);
    const evs = events(session);
    assert.deepEqual(evs.map((e) => e.event), ['STOP', 'RESUME', 'RESET', 'SHUTDOWN']);

    const [stop, resume, reset, quit] = run(up, evs);
    assert.ok(stop !== undefined && resume !== undefined && reset !== undefined && quit !== undefined);
    // An operator's stop: paused by the user, and QEMU is asked whether it paused the guest itself.
    assert.equal(stop.status.state, 'paused');
    assert.equal(stop.status.reason, 'user');
    assert.deepEqual(stop.effects, [{ kind: 'query-pause-reason', epoch: stop.status.epoch }]);
    assert.ok(stop.status.epoch > up.epoch);
    // Its answer ("paused") names no reason of QEMU's own: user stays.
    const answered = nextState(stop.status, { kind: 'pause-status', status: parseQueryStatus(replyTo(session, 'query-status', 1)), epoch: stop.status.epoch });
    assert.equal(answered.status.reason, 'user');

    assert.equal(resume.status.state, 'running');
    assert.equal(resume.status.reason, 'unpaused');
    // A reset keeps the domain running but starts a new epoch (its block counters move on).
    assert.equal(reset.status.state, 'running');
    assert.ok(reset.status.epoch > resume.status.epoch);
    // The host's quit (guest false) is not a guest poweroff: nothing to quit, the exit decides.
    assert.equal(quit.status.sawShutdown, true);
    assert.equal(quit.status.state, 'running');
    assert.deepEqual(quit.effects, []);
    assert.equal(nextState(quit.status, { kind: 'exited' }).status.reason, 'shutdown');
  });

  void it('a guest that powers itself off: QEMU (-no-shutdown) is told to quit and the exit reads as shutdown', () => {
    const session = loadSession('guest-poweroff-7.2.jsonl');
    const up = attached(session);
    assert.equal(up.balloonBytes, 256 * 1024 * 1024);
    const evs = events(session);
    assert.deepEqual(evs.map((e) => `${e.event}:${String(e.data['guest'])}`), ['SHUTDOWN:true', 'STOP:undefined', 'SHUTDOWN:false']);
    const [off, stop, quit] = run(up, evs);
    assert.ok(off !== undefined && stop !== undefined && quit !== undefined);
    assert.equal(off.status.state, 'shutdown');
    assert.equal(off.status.reason, 'guest');
    assert.equal(off.status.expectingExit, 'shutdown');
    assert.deepEqual(kinds(off.effects), ['quit']);
    // The STOP of -no-shutdown after the poweroff leaves it in shutdown, asks nothing.
    assert.equal(stop.status.state, 'shutdown');
    assert.deepEqual(stop.effects, []);
    // Re-attached in this state (query-status "shutdown"), it is quit again.
    const again = nextState(stop.status, { kind: 'attached', status: parseQueryStatus(replyTo(session, 'query-status', 1)) });
    assert.equal(again.status.state, 'shutdown');
    assert.deepEqual(kinds(again.effects), ['quit']);
    const gone = nextState(quit.status, { kind: 'exited' });
    assert.equal(gone.status.state, 'shutoff');
    assert.equal(gone.status.reason, 'shutdown');
    assert.equal(gone.status.balloonBytes, undefined);
  });

  void it('every recorded event is handled without throwing, and only a balloon change keeps the epoch', () => {
    const files = readdirSync(new URL('../fixtures/qmp/', import.meta.url)).filter((f) => f.endsWith('.jsonl'));
    assert.ok(files.length >= 3);
    for (const f of files) {
      let s: RunStatus = { ...SHUT_OFF, state: 'running', reason: 'booted' };
      for (const ev of events(loadSession(f))) {
        const t = nextState(s, ev);
        assert.equal(t.status.epoch, ev.event === 'BALLOON_CHANGE' ? s.epoch : s.epoch + 1, `${f}: ${ev.event}`);
        s = t.status;
      }
    }
  });
});

void describe('run-state table: what the recordings do not show', () => {
  const running: RunStatus = { ...SHUT_OFF, state: 'running', reason: 'booted', epoch: 3 };
  const stopAt = (at: number): RunEvent => ({ kind: 'qmp', event: 'STOP', data: {}, at });
  // As QEMU 7.2 sends it for a disk with werror=stop (qapi/block-core.json BLOCK_IO_ERROR).
  const ioErrorData = { device: '', 'node-name': 'fmt-vda', operation: 'write', action: 'stop', nospace: true, reason: 'No space left on device' };
  const ioError: RunEvent = { kind: 'qmp', event: 'BLOCK_IO_ERROR', data: ioErrorData, at: 1000 };

  void it('a STOP right after a stopping I/O error is an I/O error pause; later it is the user', () => {
    const [err, stop] = run(running, [ioError, stopAt(1000 + IO_ERROR_STOP_MS - 1)]);
    assert.deepEqual(err?.effects, [{ kind: 'io-error', device: 'vda', operation: 'write', reason: 'No space left on device', nospace: true }]);
    assert.equal(stop?.status.reason, 'ioerror');
    assert.equal(stop?.status.ioErrorAt, null);
    assert.equal(last(run(running, [ioError, stopAt(1000 + IO_ERROR_STOP_MS)])).reason, 'user');
    // An error the guest is told of (action report) pauses nothing.
    const report = nextState(running, { kind: 'qmp', event: 'BLOCK_IO_ERROR', data: { ...ioErrorData, action: 'report' }, at: 1000 });
    assert.deepEqual(report.effects, []);
    assert.equal(report.status.ioErrorAt, null);
  });

  void it('the query-status answer after a STOP refines the reason only in the same epoch', () => {
    const stop = nextState(running, stopAt(0));
    assert.equal(nextState(stop.status, { kind: 'pause-status', status: 'io-error', epoch: stop.status.epoch }).status.reason, 'ioerror');
    assert.equal(nextState(stop.status, { kind: 'pause-status', status: 'internal-error', epoch: stop.status.epoch }).status.reason, 'internal-error');
    assert.equal(nextState(stop.status, { kind: 'pause-status', status: 'io-error', epoch: stop.status.epoch - 1 }).status.reason, 'user');
    const resumed = nextState(stop.status, { kind: 'resumed' }).status;
    assert.equal(nextState(resumed, { kind: 'pause-status', status: 'io-error', epoch: stop.status.epoch }).status.state, 'running');
  });

  void it('a STOP while shutting down is part of the shutdown; panics, suspend and wakeup', () => {
    const s = last(run(running, [{ kind: 'qmp', event: 'SHUTDOWN', data: { guest: false, reason: 'host-signal' }, at: 0 }, stopAt(1)]));
    assert.equal(s.reason, 'shutting-down');
    assert.equal(nextState(running, { kind: 'qmp', event: 'GUEST_PANICKED', data: { action: 'pause' }, at: 0 }).status.state, 'crashed');
    const asleep = nextState(running, { kind: 'qmp', event: 'SUSPEND', data: {}, at: 0 }).status;
    assert.deepEqual([asleep.state, asleep.reason], ['pmsuspended', 'guest']);
    const awake = nextState(asleep, { kind: 'qmp', event: 'WAKEUP', data: {}, at: 0 }).status;
    assert.deepEqual([awake.state, awake.reason], ['running', 'wakeup']);
  });

  void it('a balloon change updates the size and nothing else', () => {
    const t = nextState(running, { kind: 'qmp', event: 'BALLOON_CHANGE', data: { actual: 33554432 }, at: 0 });
    assert.deepEqual(t.status, { ...running, balloonBytes: 33554432 });
    assert.deepEqual(nextState(running, { kind: 'qmp', event: 'BALLOON_CHANGE', data: { actual: 'x' }, at: 0 }).status, running);
  });

  void it('lifecycle steps: start, restore, save, attach keeping a known pause reason', () => {
    assert.deepEqual(pick(nextState(SHUT_OFF, { kind: 'launched', incoming: true }).status), ['paused', 'starting-up']);
    const paused = nextState(running, { kind: 'save-paused' }).status;
    assert.deepEqual(pick(paused), ['paused', 'save']);
    // Re-attached while paused for a save, query-status says only "paused": the known reason stays.
    assert.deepEqual(pick(nextState(paused, { kind: 'attached', status: 'paused' }).status), ['paused', 'save']);
    assert.deepEqual(pick(nextState(paused, { kind: 'attached', status: 'running' }).status), ['running', 'booted']);
    assert.deepEqual(pick(nextState(paused, { kind: 'save-failed' }).status), ['running', 'save-failed']);
    assert.deepEqual(pick(nextState(SHUT_OFF, { kind: 'restored', running: false }).status), ['paused', 'user']);
    assert.deepEqual(pick(nextState(SHUT_OFF, { kind: 'restored', running: true }).status), ['running', 'restored']);
  });

  void it('the reason a stop is reported with: named by the operation, else expected, else shutdown or crash', () => {
    assert.equal(nextState(running, { kind: 'exited' }).status.reason, 'crashed');
    const destroying = nextState(running, { kind: 'expect-exit', reason: 'destroyed' }).status;
    assert.equal(nextState(destroying, { kind: 'exited' }).status.reason, 'destroyed');
    assert.equal(nextState(destroying, { kind: 'exited', reason: 'failed' }).status.reason, 'failed');
    assert.equal(nextState(destroying, { kind: 'expect-exit', reason: 'shutdown', ifUnset: true }).status.expectingExit, 'destroyed');
    assert.equal(nextState(destroying, { kind: 'exit-not-expected' }).status.expectingExit, null);
    const off = nextState(destroying, { kind: 'exited' }).status;
    assert.equal(nextState(off, { kind: 'stopped-as', reason: 'saved' }).status.reason, 'saved');
    // Only once it is shut off.
    assert.equal(nextState(running, { kind: 'stopped-as', reason: 'saved' }).status.reason, 'booted');
  });

  void it('no module of virt-qemud changes a run state except through the table', () => {
    const dir = new URL('../../src/qemud/', import.meta.url);
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.ts') && x !== 'monitor.ts')) {
      const text = readFileSync(new URL(f, dir), 'utf8');
      assert.doesNotMatch(text, /\.status\s*=[^=]/, `${f} assigns a run status directly`);
    }
  });
});

function pick(s: RunStatus): [string, string] {
  return [s.state, s.reason];
}
