/**
 * Issue 12, finding 8: virt-proxy with file capabilities. The attack: a copy
 * of the binary gets `cap_dac_read_search+ep` (its uids stay equal, so a
 * getuid() != geteuid() check passes), an unprivileged user runs it with a
 * library of their own in --xenctrl / VIRT_PROXY_XENCTRL, and that library's
 * code would run with the capability. virt-proxy must refuse (AT_SECURE) and
 * load nothing; without capabilities, only the real root may choose the library.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, chmod, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { buildNative, NATIVE, removeDir, tempDir, type Built } from './helpers.ts';

const run = promisify(execFile);
const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function runAs(user: 'root' | 'nobody', bin: string, args: string[], env: Record<string, string> = {}): Promise<Ran> {
  const [cmd, argv] = user === 'root' ? [bin, args] : ['setpriv', [...NOBODY, bin, ...args]];
  try {
    const r = await run(cmd, argv, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, timeout: 30_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

void describe('virt-proxy with file capabilities (issue 12 finding 8)', () => {
  let dir: string;
  let built: Built;
  let evil: string;
  let marker: string;
  let capped: string;
  let plain: string;

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'this test sets file capabilities and switches users: it must run as root (CI does)');
    dir = await tempDir('vp-caps-');
    // nobody must reach the binaries and write the marker directory.
    await chmod(dir, 0o755);
    built = await buildNative(dir, ['all']);
    const out = join(dir, 'out');
    await mkdir(out);
    await chmod(out, 0o777);
    marker = join(out, 'evil-ran');
    // The caller-supplied "libxenctrl": its constructor proves it was loaded, and as whom.
    const src = join(dir, 'evil.c');
    await writeFile(src, `#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void pwn(void) {
  FILE *f = fopen(${JSON.stringify(marker)}, "a");
  if (f) { fprintf(f, "uid=%d euid=%d\\n", (int)getuid(), (int)geteuid()); fclose(f); }
}
int xc_interface_open(void) { return 0; }
`);
    evil = join(dir, 'libevil.so');
    await run('cc', ['-shared', '-fPIC', '-o', evil, src]);
    await chmod(evil, 0o755);
    capped = join(dir, 'virt-proxy-capped');
    plain = join(dir, 'virt-proxy-plain');
    await copyFile(built.proxy, capped);
    await copyFile(built.proxy, plain);
    await chmod(capped, 0o755);
    await chmod(plain, 0o755);
    try {
      await run('setcap', ['cap_dac_read_search+ep', capped]);
    } catch (err) {
      assert.fail(`setcap failed (libcap2-bin is in .ci/apt-packages.txt; the temp dir must allow security xattrs): ${String(err)}`);
    }
    const caps = (await run('getcap', [capped])).stdout;
    assert.match(caps, /cap_dac_read_search[=+]e?p?/, `the copy has the capability: ${caps}`);
  });
  after(async () => {
    if (dir !== undefined) await removeDir(dir);
  });

  void it('the caller-supplied library really runs when root asks for it (the attack payload works)', async () => {
    const r = await runAs('root', plain, ['--probe', '--xenctrl', evil]);
    assert.ok(await exists(marker), `root's --xenctrl was loaded (virt-proxy said: ${r.stderr})`);
    await removeDir(marker);
  });

  void it('with cap_dac_read_search+ep, run by nobody with --xenctrl and VIRT_PROXY_XENCTRL: refused, nothing loaded', async () => {
    for (const [args, env] of [
      [['--probe', '--xenctrl', evil], {}],
      [['--probe'], { VIRT_PROXY_XENCTRL: evil }],
      [['--stdio', '--xenctrl', evil], { VIRT_PROXY_XENCTRL: evil }],
    ] as const) {
      const r = await runAs('nobody', capped, [...args], env);
      assert.equal(r.code, 2, `exit code for ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /refusing to run .*file capabilities \(AT_SECURE\)/);
      assert.equal(await exists(marker), false, `the caller's library ran: ${args.join(' ')} ${JSON.stringify(env)}`);
    }
  });

  void it('without capabilities, a non-root caller cannot choose the library either (--xenctrl and the variable are ignored)', async () => {
    const r1 = await runAs('nobody', plain, ['--probe', '--xenctrl', evil]);
    assert.match(r1.stderr, /ignoring --xenctrl .*only root may choose/);
    const r2 = await runAs('nobody', plain, ['--probe'], { VIRT_PROXY_XENCTRL: evil });
    assert.match(r2.stderr, /ignoring VIRT_PROXY_XENCTRL: only root may choose/);
    assert.notEqual(r1.code, 0, 'no Xen here: the probe fails on the system library, not on the caller\'s');
    assert.equal(await exists(marker), false, "the caller's library ran");
  });

  void it('is built with -fstack-clash-protection and -fcf-protection', async () => {
    const flags = (await run('make', ['-C', NATIVE, '--no-print-directory', '-n', '-B', `BUILD=${join(dir, 'b2')}`, 'all'])).stdout;
    const cc = flags.split('\n').find((l) => l.includes('-o ') && l.includes('virt-proxy.c'));
    assert.ok(cc !== undefined, flags);
    assert.match(cc, /-fstack-clash-protection/);
    assert.match(cc, /-fcf-protection/);
  });
});
