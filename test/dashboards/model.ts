/**
 * Reads the committed dashboards as Grafana would: panels, targets and
 * variable queries, independent of the generator.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DASHBOARD_DIR } from '../../scripts/gen-dashboards.ts';

export type Json = Record<string, unknown>;

export interface Found {
  file: string;
  where: string;
  expr: string;
  /** Panel expressions: the legend format, the panel's unit and whether it is instant. */
  legend?: string;
  unit?: string;
  panel?: Json;
  /** Panel expressions: Grafana asks for a range (a graph) rather than one instant. */
  range?: boolean;
}

export function committed(): Map<string, Json> {
  const out = new Map<string, Json>();
  for (const f of readdirSync(DASHBOARD_DIR).filter((n) => n.endsWith('.json')).sort()) {
    out.set(f, JSON.parse(readFileSync(join(DASHBOARD_DIR, f), 'utf8')) as Json);
  }
  return out;
}

export function panelsOf(d: Json): Json[] {
  const out: Json[] = [];
  for (const p of (d.panels ?? []) as Json[]) {
    out.push(p);
    out.push(...((p.panels ?? []) as Json[]));
  }
  return out;
}

export function variablesOf(d: Json): Json[] {
  return ((d.templating as Json).list ?? []) as Json[];
}

/** The query of a query variable (the SDK writes it as {query, refId}). */
export function variableQuery(v: Json): string {
  const q = v.query;
  return typeof q === 'string' ? q : String((q as Json).query);
}

/** Every PromQL expression in the committed dashboards: panel targets and variable queries' selectors. */
export function expressions(): Found[] {
  const out: Found[] = [];
  for (const [file, d] of committed()) {
    for (const p of panelsOf(d)) {
      const unit = (((p.fieldConfig as Json | undefined)?.defaults as Json | undefined)?.unit as string | undefined) ?? '';
      for (const t of (p.targets ?? []) as Json[]) out.push({ file, where: `panel "${String(p.title)}"`, expr: String(t.expr), legend: (t.legendFormat as string | undefined) ?? '', unit, panel: p, range: t.instant !== true });
    }
    for (const v of variablesOf(d).filter((x) => x.type === 'query')) {
      const q = variableQuery(v);
      const m = /^label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\)$/.exec(q);
      assert.ok(m !== null, `${file}: variable ${String(v.name)} uses label_values(selector, label): ${q}`);
      out.push({ file, where: `variable $${String(v.name)}`, expr: m[1] as string });
    }
  }
  return out;
}
