import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { BUILD_INFO, gitRevision, VERSION } from '../src/version.ts';
import { parseMetrics, scrape, startExporter } from './helpers/exporter.ts';

void it('git revision and branch are read from a checkout, a worktree file and packed-refs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ver-'));
  try {
    const a = join(dir, 'a');
    mkdirSync(join(a, '.git', 'refs', 'heads'), { recursive: true });
    writeFileSync(join(a, '.git', 'HEAD'), 'ref: refs/heads/main\n');
    writeFileSync(join(a, '.git', 'refs', 'heads', 'main'), `${'1'.repeat(40)}\n`);
    assert.deepEqual(gitRevision(a), { revision: '1'.repeat(40), branch: 'main' });
    // A worktree: .git is a file, refs live in the common dir's packed-refs.
    const wt = join(dir, 'common', 'worktrees', 'w');
    mkdirSync(wt, { recursive: true });
    writeFileSync(join(wt, 'HEAD'), 'ref: refs/heads/feature\n');
    writeFileSync(join(wt, 'commondir'), '../..\n');
    writeFileSync(join(dir, 'common', 'packed-refs'), `# pack-refs\n${'2'.repeat(40)} refs/heads/feature\n`);
    const w = join(dir, 'w');
    mkdirSync(w);
    writeFileSync(join(w, '.git'), `gitdir: ${wt}\n`);
    assert.deepEqual(gitRevision(w), { revision: '2'.repeat(40), branch: 'feature' });
    assert.equal(gitRevision(join(dir, 'none')), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void it('virt_exporter_build_info carries version, revision, branch and the runtime versions', async () => {
  const ex = await startExporter(['--connect', 'test:///default']);
  try {
    const s = parseMetrics(await scrape(ex.url)).find((x) => x.name === 'virt_exporter_build_info');
    assert.ok(s !== undefined);
    assert.deepEqual(s.labels, { version: VERSION, revision: BUILD_INFO.revision, branch: BUILD_INFO.branch, nodejs: process.versions.node, v8: process.versions.v8 });
    assert.match(s.labels['revision'] ?? '', /^[0-9a-f]{40}$/, 'this test runs from a git checkout');
  } finally {
    await ex.stop();
  }
});
