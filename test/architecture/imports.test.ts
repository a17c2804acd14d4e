// The import graph of src/ (static, type-only and dynamic imports alike) has
// no cycle: each layer (virt front-end, drivers, collectors, http, ...) can be
// loaded, read and changed without dragging in the ones that use it.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const SPECIFIER = /(?:^|[^\w.])(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\sfrom\s+)?['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

export function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sources(SRC)) {
    const text = readFileSync(file, 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(SPECIFIER)) {
      const spec = m[1] ?? m[2];
      if (spec !== undefined) deps.push(relative(SRC, resolve(dirname(file), spec)));
    }
    graph.set(relative(SRC, file), deps);
  }
  return graph;
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
export function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v) as number, idx.get(w) as number));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

void describe('the import graph of src/', () => {
  void it('finds the imports it walks (a sanity check of the walker itself)', () => {
    const g = importGraph();
    assert.ok(g.size > 50, `${g.size} files`);
    assert.ok(g.get('virt/connection.ts')?.includes('drivers/registry.ts'), 'connection.ts imports the driver registry');
    assert.ok(g.get('drivers/registry.ts')?.includes('drivers/qemu.ts'), 'dynamic imports count too');
    assert.deepEqual(cycles(new Map([['a.ts', ['b.ts']], ['b.ts', ['a.ts']], ['c.ts', []]])), [['a.ts', 'b.ts']]);
  });

  void it('has no cycle, type-only and dynamic imports included', () => {
    assert.deepEqual(cycles(importGraph()), []);
  });

  void it('keeps the driver and virt-qemud apart: both speak through qemud-shared/ and the driver interface only', () => {
    const g = importGraph();
    // The driver interface: the typed readings and the operation table.
    const driverInterface = new Set(['drivers/types.ts', 'drivers/ops.ts']);
    const bad: string[] = [];
    for (const [file, deps] of g) {
      for (const dep of deps) {
        const daemonSide = file.startsWith('qemud/') || file.startsWith('qemud-shared/');
        if (daemonSide && dep.startsWith('drivers/') && !driverInterface.has(dep)) bad.push(`${file} -> ${dep} (a driver internal)`);
        if (!daemonSide && !file.startsWith('cli/qemud') && dep.startsWith('qemud/')) bad.push(`${file} -> ${dep} (a daemon internal)`);
        if (file.startsWith('qemud-shared/') && dep.startsWith('qemud/')) bad.push(`${file} -> ${dep} (shared code importing the daemon)`);
      }
    }
    assert.deepEqual(bad, []);
  });
});
