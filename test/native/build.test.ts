/**
 * The Makefile builds every target warning-free (-Wall -Wextra -Werror), and
 * xen-abi.h matches the real Xen 4.17 headers of libxen-dev field by field.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { NATIVE, removeDir, tempDir } from './helpers.ts';

const run = promisify(execFile);
let dir: string;

before(async () => {
  dir = await tempDir('vp-build-');
});
after(async () => {
  await removeDir(dir);
});

void describe('native/Makefile', () => {
  void it('builds virt-proxy, the stub and the ASan build with -Wall -Wextra -Werror and no warning', async () => {
    const build = join(dir, 'build');
    const out = await run('make', ['-C', NATIVE, '--no-print-directory', `BUILD=${build}`, 'WERROR=1', 'all', 'stub', 'asan'], { timeout: 180_000 });
    assert.doesNotMatch(out.stderr, /warning:/);
    for (const cmd of out.stdout.split('\n').filter((l) => l.startsWith('cc ') || l.includes(' -o '))) {
      assert.match(cmd, /-Wall -Wextra/);
      assert.match(cmd, /-Werror/);
    }
    for (const f of ['virt-proxy', 'libxenctrl-stub.so', 'virt-proxy-asan']) assert.ok((await stat(join(build, f))).isFile(), f);
  });

  void it('-Werror really fails the build on a warning (the flag reaches the compiler)', async () => {
    const bad = join(dir, 'warn.c');
    await writeFile(bad, 'int main(void) { int unused; return 0; }\n');
    const flags = (await run('make', ['-C', NATIVE, '--no-print-directory', '-n', 'BUILD=' + join(dir, 'b2'), 'WERROR=1', 'all'])).stdout;
    const warn = flags.match(/-Wall -Wextra[^\n]*?-Werror/)?.[0];
    assert.ok(warn, `no -Werror in: ${flags}`);
    await assert.rejects(run('cc', [...warn.split(' '), '-c', bad, '-o', join(dir, 'warn.o')]));
  });

  void it('xen-abi.h matches the installed Xen headers (make abi-check, needs libxen-dev)', async () => {
    try {
      await stat('/usr/include/xenctrl.h');
    } catch {
      assert.fail('/usr/include/xenctrl.h is missing: install libxen-dev (listed in .ci/apt-packages.txt)');
    }
    const out = await run('make', ['-C', NATIVE, '--no-print-directory', 'BUILD=' + join(dir, 'b3'), 'WERROR=1', 'abi-check']);
    assert.doesNotMatch(out.stderr, /warning|error/);
  });
});
