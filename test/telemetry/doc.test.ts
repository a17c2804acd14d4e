import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { helpText } from '../../src/config/schema.ts';
import { refreshOtelDoc } from '../../src/telemetry/doc.ts';
import { settingsOf } from '../../src/config/spec.ts';
import { TELEMETRY } from '../../src/telemetry/settings.ts';
import { FLAG_VARIABLES } from '../../src/telemetry/settings.ts';
import { ROOT } from '../helpers/exporter.ts';

void describe('docs/opentelemetry.md and --help', () => {
  void it('has its generated sections (variables, names, attributes) as npm run docs writes them', () => {
    const text = readFileSync(`${ROOT}docs/opentelemetry.md`, 'utf8');
    assert.equal(text, refreshOtelDoc(text), 'stale: run npm run docs');
    for (const variable of Object.values(FLAG_VARIABLES)) assert.ok(text.includes(`\`${variable}\``), variable);
  });

  void it('says in --help which OTEL_* variable each telemetry flag corresponds to', () => {
    const help = helpText('virt-exporter', '');
    assert.deepEqual(Object.keys(FLAG_VARIABLES).sort(), settingsOf(TELEMETRY.schema).map(([k]) => k).sort());
    for (const [key, variable] of Object.entries(FLAG_VARIABLES)) {
      const at = help.indexOf(`--${key}=VALUE`);
      assert.ok(at >= 0, `--${key} in --help`);
      const entry = help.slice(at, help.indexOf('\n\n', at));
      assert.ok(entry.includes(variable), `--${key} names ${variable}: ${entry}`);
    }
  });
});
