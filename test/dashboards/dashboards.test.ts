import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { METRIC_LIST, METRICS, type MetricId } from '../../src/collectors/catalogue.ts';
import { DASHBOARD_DIR, NOT_CHARTED, generateDashboards } from '../../scripts/gen-dashboards.ts';
import { selectorsOf } from './promql.ts';

interface Found {
  file: string;
  where: string;
  expr: string;
}

type Json = Record<string, unknown>;

function committed(): Map<string, Json> {
  const out = new Map<string, Json>();
  for (const f of readdirSync(DASHBOARD_DIR).filter((n) => n.endsWith('.json'))) {
    out.set(f, JSON.parse(readFileSync(join(DASHBOARD_DIR, f), 'utf8')) as Json);
  }
  return out;
}

function panelsOf(d: Json): Json[] {
  const out: Json[] = [];
  for (const p of (d.panels ?? []) as Json[]) {
    out.push(p);
    out.push(...((p.panels ?? []) as Json[]));
  }
  return out;
}

/** Every PromQL expression in the committed dashboards: panel targets and variable queries' selectors. */
function expressions(): Found[] {
  const out: Found[] = [];
  for (const [file, d] of committed()) {
    for (const p of panelsOf(d)) {
      for (const t of (p.targets ?? []) as Json[]) out.push({ file, where: `panel "${String(p.title)}"`, expr: String(t.expr) });
    }
    for (const v of ((d.templating as Json).list ?? []) as Json[]) {
      const q = String(v.definition);
      const m = /^label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\)$/.exec(q);
      assert.ok(m !== null, `${file}: variable ${String(v.name)} uses label_values(selector, label): ${q}`);
      out.push({ file, where: `variable $${String(v.name)}`, expr: m[1] as string });
    }
  }
  return out;
}

/** Grafana's variables replaced by values Prometheus accepts, as Grafana does before sending. */
function substitute(expr: string): string {
  return expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m').replace(/\$(job|instance|domain)\b/g, 'x');
}

const BY_NAME = new Map(METRIC_LIST.map((m) => [m.name, m]));

void describe('Grafana dashboards', () => {
  void it('are committed exactly as the generator produces them from the catalogue', () => {
    const fresh = generateDashboards();
    const files = readdirSync(DASHBOARD_DIR).filter((n) => n.endsWith('.json')).sort();
    assert.deepEqual(files, [...fresh.keys()].sort(), 'dashboards/ holds exactly the generated files');
    for (const [name, text] of fresh) {
      assert.equal(readFileSync(join(DASHBOARD_DIR, name), 'utf8'), text, `dashboards/${name} is stale: run node scripts/gen-dashboards.ts`);
    }
  });

  void it('select only catalogue metrics, and counters only through rate() or increase()', () => {
    const all = expressions();
    assert.ok(all.length > 40, `found ${all.length} expressions`);
    for (const { file, where, expr } of all) {
      const uses = selectorsOf(expr);
      assert.ok(uses.length > 0, `${file} ${where}: no metric in ${expr}`);
      for (const u of uses) {
        const spec = BY_NAME.get(u.metric);
        assert.ok(spec !== undefined, `${file} ${where}: ${u.metric} is not in the catalogue (${expr})`);
        if (spec.type === 'counter') {
          assert.ok(['rate', 'increase', 'irate'].includes(u.enclosing) && u.ranged, `${file} ${where}: counter ${u.metric} outside rate()/increase(): ${expr}`);
        } else {
          assert.ok(!u.ranged, `${file} ${where}: gauge ${u.metric} used with a range: ${expr}`);
        }
      }
    }
  });

  void it('chart every catalogue metric not explicitly set aside', () => {
    const used = new Set(expressions().flatMap((e) => selectorsOf(e.expr).map((u) => u.metric)));
    const missing = (Object.keys(METRICS) as MetricId[]).filter((id) => !used.has(METRICS[id].name) && NOT_CHARTED[id] === undefined).map((id) => METRICS[id].name);
    assert.deepEqual(missing, [], 'add these to scripts/gen-dashboards.ts or to NOT_CHARTED with a reason');
  });

  void it('use the ${DS_PROMETHEUS} input for every panel and query, and have the expected variables', () => {
    for (const [file, d] of committed()) {
      const inputs = d.__inputs as Json[];
      assert.deepEqual(
        inputs.map((x) => [x.name, x.type, x.pluginId]),
        [['DS_PROMETHEUS', 'datasource', 'prometheus']],
        file,
      );
      for (const p of panelsOf(d).filter((x) => x.type !== 'row')) {
        assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${DS_PROMETHEUS}' }, `${file} panel ${String(p.title)}`);
        for (const t of p.targets as Json[]) assert.deepEqual(t.datasource, { type: 'prometheus', uid: '${DS_PROMETHEUS}' });
      }
      const vars = ((d.templating as Json).list as Json[]).map((v) => v.name);
      assert.deepEqual(vars, file.includes('domain') ? ['job', 'instance', 'domain'] : ['job', 'instance'], file);
      const uids = new Set<number>();
      for (const p of panelsOf(d)) {
        assert.ok(!uids.has(p.id as number), `${file}: duplicate panel id ${String(p.id)}`);
        uids.add(p.id as number);
      }
    }
    const domain = committed().get('virt-exporter-domain.json') as Json;
    const domainVar = ((domain.templating as Json).list as Json[]).find((v) => v.name === 'domain') as Json;
    assert.match(String(domainVar.definition), /^label_values\(virt_domain_info\{/);
  });

  void it('parse with promtool (as recording rules)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'virt-dashboards-'));
    try {
      const rules = expressions().map((e, i) => `      - record: dashboard:expr_${i}\n        expr: ${JSON.stringify(substitute(e.expr))}\n`);
      const file = join(dir, 'rules.yml');
      writeFileSync(file, `groups:\n  - name: virt-exporter-dashboards\n    rules:\n${rules.join('')}`);
      const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8', timeout: 60_000 });
      assert.ok(r.error === undefined, `promtool is required (Debian package "prometheus"): ${String(r.error)}`);
      assert.equal(r.status, 0, `promtool check rules failed:\n${r.stdout}${r.stderr}`);
      assert.match(r.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('the PromQL reader finds selectors and their enclosing call', () => {
    assert.deepEqual(selectorsOf('topk(10, sum by (instance, domain) (rate(a_total{x="y(",z=~"$v"}[$__rate_interval]) + b))'), [
      { metric: 'a_total', enclosing: 'rate', ranged: true },
      { metric: 'b', enclosing: 'sum', ranged: false },
    ]);
    assert.deepEqual(selectorsOf('count(c == 0) or vector(0)'), [{ metric: 'c', enclosing: 'count', ranged: false }]);
    assert.deepEqual(selectorsOf('x_total / on (a) group_left (b) y'), [
      { metric: 'x_total', enclosing: '', ranged: false },
      { metric: 'y', enclosing: '', ranged: false },
    ]);
  });
});
