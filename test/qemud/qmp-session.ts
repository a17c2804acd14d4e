/** Recorded QMP sessions (test/fixtures/qmp/*.jsonl, made by record.ts): what was sent, what QEMU answered and announced. */
import { readFileSync } from 'node:fs';
import { parseQmpJson } from '../../src/qemud/json.ts';
import type { RunEvent } from '../../src/qemud/monitor.ts';

export interface Step {
  sent?: { execute: string; arguments?: Record<string, unknown>; id: number };
  received?: Record<string, unknown>;
}

export function loadSession(name: string): Step[] {
  const text = readFileSync(new URL(`../fixtures/qmp/${name}`, import.meta.url), 'utf8');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => parseQmpJson(l) as Step);
}

/** The reply QEMU gave to the first `command` sent after index `from` (skip: that many of them first). */
export function replyTo(steps: Step[], command: string, skip = 0): unknown {
  const sent = steps.filter((s) => s.sent?.execute === command)[skip]?.sent;
  if (sent === undefined) throw new Error(`the session never sent ${command} (#${skip})`);
  const r = steps.find((s) => s.received?.['id'] === sent.id)?.received;
  if (r === undefined || !('return' in r)) throw new Error(`no return to ${command} #${skip}`);
  return r['return'];
}

/** The session's events as the monitor hands them to the run-state table (received at QEMU's timestamp). */
export function events(steps: Step[]): Array<Extract<RunEvent, { kind: 'qmp' }>> {
  const out: Array<Extract<RunEvent, { kind: 'qmp' }>> = [];
  for (const s of steps) {
    const m = s.received;
    if (m === undefined || typeof m['event'] !== 'string') continue;
    const ts = m['timestamp'] as { seconds: number; microseconds: number };
    out.push({ kind: 'qmp', event: m['event'], data: (m['data'] as Record<string, unknown> | undefined) ?? {}, at: ts.seconds * 1000 + ts.microseconds / 1000 });
  }
  return out;
}
