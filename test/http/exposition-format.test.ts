// The renderer's fast paths (pieces written straight into pooled buffers, integers
// digit by digit) against a plain reference formatter, on hostile label values and awkward numbers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COLLECTORS, METRIC_LIST, type CollectorName, type MetricSpec } from '../../src/collectors/catalogue.ts';
import { collectSamples } from '../../src/collectors/samples.ts';
import type { Snapshot } from '../../src/collectors/snapshot.ts';
import { Collection } from '../../src/collectors/collection.ts';
import { generateHost } from '../../src/drivers/test/default-host.ts';
import { createTestDriver, TestHost } from '../../src/drivers/test/driver.ts';
import { renderExposition } from '../../src/http/exposition.ts';
import { connectionFor } from '../../src/virt/connection.ts';
import { parseUri } from '../../src/virt/uri.ts';

const ALL = new Set<CollectorName>(COLLECTORS);

function reference(snap: Snapshot): string {
  const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
  const num = (v: number): string => (Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v));
  const lines = new Map<MetricSpec, string[]>();
  collectSamples(snap, (metric, labels, value) => {
    const l = metric.labels.length === 0 ? '' : `{${metric.labels.map((n, i) => `${n}="${esc(labels[i] ?? '')}"`).join(',')}}`;
    const list = lines.get(metric) ?? [];
    list.push(`${metric.name}${l} ${num(value)}\n`);
    lines.set(metric, list);
  });
  let out = '';
  for (const spec of METRIC_LIST) {
    const l = lines.get(spec);
    if (l === undefined) continue;
    out += `# HELP ${spec.name} ${spec.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${spec.name} ${spec.type}\n${l.join('')}`;
  }
  return out;
}

const NAMES = ['plain', 'quo"te', 'back\\slash', 'new\nline', 'ünïcödé', 'mixed "ü"\\\n', '日本語-vm', 'emoji-🙂', '', 'x'.repeat(300)];
const VALUES = [0, 1, 9, 10, 99, 100, 12345678901234, 999999999999999, 1e15, 1e21, 2 ** 53, 0.1, 1.5e-7, 123.456, -1, -0, NaN, Infinity, -Infinity, Number.MAX_VALUE, Number.MIN_VALUE];

void describe('text exposition formatting', () => {
  void it('renders hostile names and awkward values exactly as a plain formatter does', async () => {
    const file = generateHost(NAMES.length * 3);
    const c = new Collection(connectionFor(parseUri('test:///default'), createTestDriver(new TestHost(file)), true), { collectors: ALL, timeoutMs: 5000 });
    const snap = await c.collect();
    snap.domains.forEach((d, i) => {
      d.info.name = `${NAMES[i % NAMES.length] ?? ''}-${i}`;
      d.info.cpuTimeSeconds = VALUES[i % VALUES.length] ?? 0;
      d.info.vcpus = VALUES[(i + 3) % VALUES.length] ?? 0;
      for (const b of d.block ?? []) {
        b.device = NAMES[(i + 1) % NAMES.length] ?? '';
        b.readBytes = VALUES[(i + 5) % VALUES.length] ?? 0;
      }
    });
    const got = await renderExposition(snap, undefined, {}, undefined, 'text');
    assert.equal(got, reference(snap));
  });
});
