import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { METRIC_LIST } from '../../src/collectors/catalogue.ts';
import { GENERATED_PAGES, refreshReadme } from '../../src/docs/reference.ts';
import { ROOT } from '../helpers/exporter.ts';

void describe('generated reference docs', () => {
  for (const [path, gen] of Object.entries(GENERATED_PAGES)) {
    void it(`${path} is up to date with the code (npm run docs)`, () => {
      assert.equal(readFileSync(ROOT + path, 'utf8'), gen(), `${path} is stale: run npm run docs`);
    });
  }
  void it('README.md flag and metric tables are up to date (npm run docs)', () => {
    const readme = readFileSync(ROOT + 'README.md', 'utf8');
    assert.equal(readme, refreshReadme(readme), 'README.md is stale: run npm run docs');
    for (const m of METRIC_LIST) assert.ok(readme.includes(`\`${m.name}\``), `README lists ${m.name}`);
  });
  void it('the catalogue is consistent: unique names, counters end in _total, units in names', () => {
    const names = new Set<string>();
    for (const m of METRIC_LIST) {
      assert.ok(!names.has(m.name), `duplicate ${m.name}`);
      names.add(m.name);
      assert.match(m.name, /^virt_[a-z0-9_]+$/);
      assert.equal(m.type === 'counter', m.name.endsWith('_total'), `${m.name}: _total iff counter`);
      if (m.unit !== '') assert.match(m.name, new RegExp(`_${m.unit}(_total)?$`), `${m.name} ends with its unit`);
      if (m.name.startsWith('virt_domain_')) assert.deepEqual(m.labels.slice(0, 2), ['domain', 'uuid'], `${m.name} has domain and uuid`);
    }
  });
});
