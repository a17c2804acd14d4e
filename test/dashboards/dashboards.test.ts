import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { METRIC_LIST, METRICS, REGISTRY_METRICS, type MetricId } from '../../src/collectors/catalogue.ts';
import { DASHBOARD_DIR, DOMAIN_UID, EXTERNAL_METRICS, NOT_CHARTED, PER_SECOND_UNITS, ROOT, generateAll, generateDashboards } from '../../scripts/gen-dashboards.ts';
import { committed, expressions, panelsOf, variablesOf, type Json } from './model.ts';
import { selectorsOf } from './promql.ts';

/** Grafana's variables replaced by values Prometheus accepts, as Grafana does before sending. */
function substitute(expr: string): string {
  return expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m').replace(/\$(job|instance|domain)\b/g, 'x');
}

const BY_NAME = new Map([...METRIC_LIST, ...Object.values(REGISTRY_METRICS)].map((m) => [m.name, { type: m.type }]));
for (const [name, e] of Object.entries(EXTERNAL_METRICS)) BY_NAME.set(name, { type: e.type });
const DS = { type: 'prometheus', uid: '${datasource}' };

void describe('Grafana dashboards', () => {
  void it('are committed exactly as the generator produces them with the foundation SDK (dashboards, rules, chart copy, docs/alerts.md)', () => {
    const files = readdirSync(DASHBOARD_DIR).filter((n) => n.endsWith('.json')).sort();
    assert.deepEqual(files, [...generateDashboards().keys()].sort(), 'dashboards/ holds exactly the generated files');
    assert.deepEqual(files, ['virt-exporter-domain.json', 'virt-exporter-health.json', 'virt-exporter-host.json']);
    for (const [path, text] of generateAll()) {
      assert.equal(readFileSync(join(ROOT, path), 'utf8'), text, `${path} is stale: run npm run dashboards`);
    }
  });

  void it('select only catalogue metrics (or the listed Prometheus/process ones), and counters only through rate() or increase()', () => {
    const all = expressions();
    assert.ok(all.length > 70, `found ${all.length} expressions`);
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

  void it('chart every catalogue metric not explicitly set aside, and the exporter-health board charts the registry counters', () => {
    const used = new Set(expressions().flatMap((e) => selectorsOf(e.expr).map((u) => u.metric)));
    const missing = (Object.keys(METRICS) as MetricId[]).filter((id) => !used.has(METRICS[id].name) && NOT_CHARTED[id] === undefined).map((id) => METRICS[id].name);
    assert.deepEqual(missing, [], 'add these to scripts/gen-dashboards.ts or to NOT_CHARTED with a reason');
    for (const m of Object.values(REGISTRY_METRICS)) assert.ok(used.has(m.name), `${m.name} is charted`);
  });

  void it('have a datasource variable used by every panel, target and query variable, then $job, $instance (and $domain)', () => {
    for (const [file, d] of committed()) {
      const vars = variablesOf(d);
      assert.deepEqual(vars[0], { ...vars[0], type: 'datasource', name: 'datasource', query: 'prometheus' }, file);
      assert.deepEqual(vars.map((v) => v.name), file.includes('domain') ? ['datasource', 'job', 'instance', 'domain'] : ['datasource', 'job', 'instance'], file);
      for (const v of vars.slice(1)) assert.deepEqual(v.datasource, DS, `${file} variable ${String(v.name)}`);
      const ids = new Set<number>();
      for (const p of panelsOf(d)) {
        assert.ok(!ids.has(p.id as number), `${file}: duplicate panel id ${String(p.id)}`);
        ids.add(p.id as number);
        if (p.type === 'row') continue;
        assert.deepEqual(p.datasource, DS, `${file} panel ${String(p.title)}`);
        for (const t of p.targets as Json[]) assert.deepEqual(t.datasource, DS);
      }
    }
    const domainVar = variablesOf(committed().get('virt-exporter-domain.json') as Json).find((v) => v.name === 'domain') as Json;
    assert.match(JSON.stringify(domainVar.query), /label_values\(virt_domain_info\{/);
  });

  void it('describe every panel, put {{instance}} in every legend, and chart plain rates in a per-second unit', () => {
    for (const [file, d] of committed()) {
      for (const p of panelsOf(d).filter((x) => x.type !== 'row')) {
        assert.ok(typeof p.description === 'string' && p.description.length > 10, `${file} panel ${String(p.title)} has a description`);
      }
    }
    for (const e of expressions().filter((x) => x.panel !== undefined)) {
      assert.match(e.legend ?? '', /\{\{instance\}\}/, `${e.file} ${e.where}: legend "${e.legend ?? ''}" names the instance`);
      const plainRate = /\brate\(/.test(e.expr) && !e.expr.includes(' / ') && e.panel?.type !== 'stat';
      if (plainRate) assert.ok(PER_SECOND_UNITS.has(e.unit ?? ''), `${e.file} ${e.where}: a rate in unit "${e.unit ?? ''}" (${e.expr})`);
    }
  });

  void it('guard every ratio of rates against 0/0 with "> 0" on the denominator', () => {
    let ratios = 0;
    for (const e of expressions()) {
      for (const m of e.expr.matchAll(/ \/ (.*)$/g)) {
        const den = m[1] as string;
        if (!den.includes('rate(')) continue;
        ratios++;
        assert.match(den, /^\(rate\(.*\) > 0\)$/, `${e.file} ${e.where}: denominator ${den}`);
      }
    }
    assert.ok(ratios >= 3, `found ${ratios} ratios`);
  });

  void it('link every top-N panel to the domain board, carrying domain and instance', () => {
    let topN = 0;
    for (const [file, d] of committed()) {
      for (const p of panelsOf(d)) {
        if (!((p.targets ?? []) as Json[]).some((t) => /^topk\(/.test(String(t.expr)))) continue;
        topN++;
        const links = (((p.fieldConfig as Json).defaults as Json).links ?? []) as Json[];
        assert.equal(links.length, 1, `${file} ${String(p.title)} has a drill-down link`);
        const url = String(links[0]?.url);
        assert.ok(url.startsWith(`/d/${DOMAIN_UID}/`), url);
        for (const v of ['var-domain=${__field.labels.domain}', 'var-instance=${__field.labels.instance}', '${datasource:queryparam}', '${__url_time_range}']) assert.ok(url.includes(v), `${url} has ${v}`);
        for (const t of p.targets as Json[]) assert.match(String(t.expr), /by \(job, instance, domain\)|^topk\(10, virt_/, 'the top-N series carry job, instance and domain');
      }
    }
    assert.ok(topN >= 4, `found ${topN} top-N panels`);
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
    assert.deepEqual(selectorsOf('label_replace(sum by (i) (0 * u), "a", "b", "", "")'), [{ metric: 'u', enclosing: 'sum', ranged: false }]);
  });
});
