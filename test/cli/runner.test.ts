import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { NODE, ROOT } from '../helpers/exporter.ts';

void describe('bin/node-runner.sh', () => {
  const dir = mkdtempSync(join(tmpdir(), 'virt-runner-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'bin'));
  mkdirSync(join(dir, 'src/cli'), { recursive: true });
  mkdirSync(join(dir, 'build/src/cli'), { recursive: true });
  mkdirSync(join(dir, 'node_modules/.bin'), { recursive: true });
  copyFileSync(join(ROOT, 'bin/node-runner.sh'), join(dir, 'bin/node-runner.sh'));
  symlinkSync(NODE, join(dir, 'node_modules/.bin/node'));
  writeFileSync(join(dir, 'bin/probe'), '#!/bin/sh\n. "$(dirname "$(readlink -f "$0")")/node-runner.sh"\nrun_entry src/cli/probe.ts "$@"\n');
  chmodSync(join(dir, 'bin/probe'), 0o755);
  writeFileSync(join(dir, 'src/cli/probe.ts'), "const from: string = 'sources';\nprocess.stdout.write(from);\n");
  writeFileSync(join(dir, 'build/src/cli/probe.js'), "process.stdout.write('compiled');\n");
  const run = (): string => execFileSync(join(dir, 'bin/probe'), { encoding: 'utf8' });
  const past = new Date(Date.now() - 60_000);

  void it('runs the compiled copy while it is newer than every source file', () => {
    utimesSync(join(dir, 'src/cli/probe.ts'), past, past);
    writeFileSync(join(dir, 'build/.stamp'), 'now');
    assert.equal(run(), 'compiled');
  });

  void it('runs the sources once one of them is newer than the build, so an edit never runs stale code', () => {
    writeFileSync(join(dir, 'src/cli/probe.ts'), "process.stdout.write('edited' as string);\n");
    assert.equal(run(), 'edited');
  });

  void it('runs the sources when there is no build', () => {
    rmSync(join(dir, 'build'), { recursive: true });
    assert.equal(run(), 'edited');
  });
});
