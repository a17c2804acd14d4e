/**
 * A fresh Debian root made by mmdebstrap from Debian's archive, cached as a
 * tarball under .cache/debian-root/<key>.tar, key = hash of every input
 * (suite, variant, packages, mirror, mmdebstrap's version), so an unchanged
 * input costs nothing and a changed one builds anew (about 3 minutes).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../helpers/exporter.ts';

const execFileP = promisify(execFile);

export const DEBIAN_ROOT_SPEC = {
  suite: 'bookworm',
  variant: 'minbase',
  // adduser: the package's postinst adds its system user with it.
  include: ['adduser'],
  mirror: 'http://deb.debian.org/debian',
} as const;

async function tool(name: string, pkg: string): Promise<string> {
  try {
    return (await execFileP(name, ['--version'])).stdout.trim();
  } catch {
    throw new Error(`${name} is not installed (Debian package ${pkg}, see .ci/apt-packages.txt)`);
  }
}

/** The cached root tarball, built first when missing. */
export async function debianRootTarball(): Promise<string> {
  const version = await tool('mmdebstrap', 'mmdebstrap');
  const key = createHash('sha256').update(JSON.stringify({ ...DEBIAN_ROOT_SPEC, version })).digest('hex').slice(0, 24);
  const dir = join(ROOT, '.cache', 'debian-root');
  const tar = join(dir, `${key}.tar`);
  if (existsSync(tar)) return tar;
  mkdirSync(dir, { recursive: true });
  const tmp = `${tar}.${process.pid}.tmp`;
  const s = DEBIAN_ROOT_SPEC;
  try {
    await execFileP('mmdebstrap', [`--variant=${s.variant}`, `--include=${s.include.join(',')}`, '--format=tar', s.suite, tmp, s.mirror], { timeout: 900_000, maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new Error(`mmdebstrap could not make a ${s.suite} root from ${s.mirror}: ${(err as { stderr?: string }).stderr ?? String(err)}`);
  }
  renameSync(tmp, tar);
  return tar;
}
