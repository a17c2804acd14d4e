// Golden expositions of test:///default at a fixed clock, as node_exporter's
// e2e-output.txt: any change to a name, label, help text, type, order or value
// fails here. After an intended change: VIRT_UPDATE_GOLDEN=1 node --test THIS_FILE
// and review the diff of test/fixtures/exposition/.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { COLLECTORS, type CollectorName } from '../../src/collectors/catalogue.ts';
import { Collection } from '../../src/collectors/collection.ts';
import { DEFAULT_HOST } from '../../src/drivers/test/default-host.ts';
import { createTestDriver, TestHost } from '../../src/drivers/test/driver.ts';
import { renderExposition, type ExpositionFormat } from '../../src/http/exposition.ts';
import { connectionFor } from '../../src/virt/connection.ts';
import { parseUri } from '../../src/virt/uri.ts';

const CLOCK = Date.UTC(2026, 0, 1, 12, 0, 0);
const ALL = new Set<CollectorName>(COLLECTORS);
const FIXTURES = new URL('../fixtures/exposition/', import.meta.url);

/** Values that measure this run (durations) or this build (versions) are masked; all else must match. */
function stable(text: string): string {
  return text
    .split('\n')
    .map((line) => {
      if (/^virt_(collector|collection)_duration_seconds[{ ]/.test(line)) return line.replace(/ [^ ]+$/, ' <duration>');
      if (line.startsWith('virt_exporter_build_info{')) return 'virt_exporter_build_info{<build>} 1';
      return line;
    })
    .join('\n');
}

async function render(format: ExpositionFormat): Promise<string> {
  const host = new TestHost(structuredClone(DEFAULT_HOST), () => CLOCK);
  const c = new Collection(connectionFor(parseUri('test:///default'), createTestDriver(host), true), { collectors: ALL, timeoutMs: 5000 });
  return stable(await renderExposition(await c.collect(), ALL, { version: '0.0.0-golden', errorCounts: c.errorCounts }, undefined, format));
}

void describe('golden exposition of test:///default', () => {
  for (const [format, file] of [['text', 'test-default.txt'], ['openmetrics', 'test-default.openmetrics.txt']] as const) {
    void it(`${format} output is unchanged`, async () => {
      const got = await render(format);
      const path = new URL(file, FIXTURES);
      if (process.env['VIRT_UPDATE_GOLDEN'] === '1') writeFileSync(path, got);
      const want = readFileSync(path, 'utf8');
      assert.equal(got, want, `the ${format} exposition changed; if intended, regenerate with VIRT_UPDATE_GOLDEN=1 and review the diff`);
    });
  }
});
