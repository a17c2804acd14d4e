import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { METRIC_LIST, REGISTRY_METRICS } from '../../src/collectors/catalogue.ts';
import { EXTERNAL_METRICS, RULES_FILE, ROOT } from '../../scripts/gen-dashboards.ts';
import { ALERTS, RECORDS, alertExpr, anchorOf } from '../../scripts/rules.ts';
import type { Json } from './model.ts';
import { selectorsOf } from './promql.ts';

const TESTS = join(ROOT, 'test/dashboards/alerts.test.yml');
const KNOWN = new Map([...METRIC_LIST, ...Object.values(REGISTRY_METRICS)].map((m) => [m.name, m.type as string]));
for (const [name, e] of Object.entries(EXTERNAL_METRICS)) KNOWN.set(name, e.type);
for (const r of Object.values(RECORDS)) KNOWN.set(r.record, 'gauge');

function promtool(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('promtool', args, { encoding: 'utf8', timeout: 120_000, cwd: ROOT });
  assert.ok(r.error === undefined, `promtool is required (Debian package "prometheus"): ${String(r.error)}`);
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

void describe('Prometheus rules (dashboards/rules/virt-exporter.rules.yml)', () => {
  const file = YAML.parse(readFileSync(join(ROOT, RULES_FILE), 'utf8')) as { groups: Array<{ name: string; rules: Json[] }> };
  const rules = file.groups.flatMap((g) => g.rules);
  const alerts = rules.filter((r) => r.alert !== undefined);

  void it('pass promtool check rules', () => {
    const r = promtool(['check', 'rules', RULES_FILE]);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  void it('have the alerts the issue lists, each with summary, description, runbook and severity', () => {
    assert.deepEqual(
      alerts.map((a) => a.alert),
      ['VirtExporterDown', 'VirtHypervisorUnreachable', 'VirtCollectorFailing', 'VirtCollectionSlow', 'VirtDomainCrashed', 'VirtDomainPausedLong', 'VirtDomainCpuSaturated', 'VirtDomainHighVcpuSteal', 'VirtHostMemoryOvercommitted', 'VirtDomainDiskErrors', 'VirtOtlpExportFailing'],
    );
    const doc = readFileSync(join(ROOT, 'docs/alerts.md'), 'utf8');
    for (const a of alerts) {
      const ann = a.annotations as Json;
      assert.ok(String(ann.summary).length > 10 && String(ann.description).length > 10, `${String(a.alert)} annotations`);
      assert.ok(['critical', 'warning', 'info'].includes(String((a.labels as Json).severity)), `${String(a.alert)} severity`);
      assert.equal(ann.runbook, `docs/alerts.md#${anchorOf(String(a.alert))}`);
      assert.ok(doc.includes(`\n### ${String(a.alert)}\n`), `docs/alerts.md has a runbook section for ${String(a.alert)}`);
    }
  });

  void it('use only catalogue metrics and recorded series; counters only in rate()/increase()', () => {
    for (const r of rules) {
      for (const u of selectorsOf(String(r.expr))) {
        const type = KNOWN.get(u.metric);
        assert.ok(type !== undefined, `${String(r.alert ?? r.record)}: ${u.metric} is not in the catalogue`);
        if (type === 'counter') assert.ok(['rate', 'increase'].includes(u.enclosing) && u.ranged, `${String(r.alert ?? r.record)}: counter ${u.metric} outside rate()`);
      }
    }
    for (const a of ALERTS) assert.equal(alerts.find((x) => x.alert === a.alert)?.expr, alertExpr(a));
  });

  void it('have a promtool unit test per alert with a firing and a non-firing case, and the tests pass', () => {
    const tests = YAML.parse(readFileSync(TESTS, 'utf8')) as { tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }> };
    const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const a of alerts) {
      const mine = cases.filter((c) => c.alertname === a.alert);
      assert.ok(mine.some((c) => c.exp_alerts.length > 0), `${String(a.alert)} has a firing case`);
      assert.ok(mine.some((c) => c.exp_alerts.length === 0), `${String(a.alert)} has a non-firing case`);
    }
    const r = promtool(['test', 'rules', TESTS]);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /SUCCESS/);
  });
});
