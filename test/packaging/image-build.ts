/**
 * The OCI image built from the repository's real Dockerfile with Debian's
 * tooling and without pulling anything:
 *
 *  1. the base: the cached mmdebstrap root of debian-root.ts, imported into a
 *     private containers-storage (overlay driver, a temporary directory) under
 *     every name the Dockerfile's `FROM` lines use;
 *  2. `buildah bud --pull=never --isolation=chroot` on the Dockerfile, with
 *     the host's CA bundle as the build secret `npm-ca` (mounted for the
 *     `npm ci` step only, never a layer) so that npm reaches the registry
 *     through a TLS-intercepting proxy, and the git revision as build args;
 *  3. the result saved as an uncompressed docker-archive under
 *     .cache/image/<key>.tar, key = hash of every input (the Dockerfile,
 *     .dockerignore, the build context's files, the base root, buildah's
 *     version, the revision and branch), and on a later run loaded from there
 *     instead of rebuilt.
 *
 * The same storage is used by podman (runc runtime, host network) to run it.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../helpers/exporter.ts';
import { DEBIAN_ROOT_SPEC, debianRootTarball } from './debian-root.ts';

const execFileP = promisify(execFile);

export const IMAGE_REPOSITORY = 'ghcr.io/virt-exporter/virt-exporter';
/** The build secret's id, as the Dockerfile's `RUN --mount=type=secret,id=...` names it. */
export const SECRET_ID = 'npm-ca';

interface Tool {
  name: string;
  pkg: string;
}
const TOOLS: Tool[] = [
  { name: 'buildah', pkg: 'buildah' },
  { name: 'podman', pkg: 'podman' },
  { name: 'runc', pkg: 'runc' },
];

async function version(t: Tool): Promise<string> {
  try {
    return (await execFileP(t.name, ['--version'])).stdout.trim();
  } catch {
    throw new Error(`${t.name} is not installed (Debian package ${t.pkg}, see .ci/apt-packages.txt)`);
  }
}

async function git(args: string[]): Promise<string> {
  try {
    return (await execFileP('git', ['-C', ROOT, ...args])).stdout.trim();
  } catch {
    return 'unknown';
  }
}

/** The names the Dockerfile builds FROM, other than its own stages. */
export function fromNames(dockerfile: string): string[] {
  const stages = new Set<string>();
  const names: string[] = [];
  for (const line of dockerfile.split('\n')) {
    const m = /^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (m === null) continue;
    const name = m[1] ?? '';
    if (!stages.has(name) && !names.includes(name)) names.push(name);
    if (m[2] !== undefined) stages.add(m[2]);
  }
  return names;
}

/** docker.io/library/debian:bookworm-slim for debian:bookworm-slim, as buildah resolves short names. */
function qualified(name: string): string {
  const first = name.split('/')[0] ?? '';
  if (name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) return name;
  return name.includes('/') ? `docker.io/${name}` : `docker.io/library/${name}`;
}

/**
 * The build context as .dockerignore leaves it: the `!` entries under the
 * leading `*`, less the other lines (path prefixes and `**\/` name globs).
 * Over-inclusion would only cost a rebuild; every file the build sees is here.
 */
export function contextFiles(): string[] {
  const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#') && l !== '*');
  const includes = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
  const excludes = lines.filter((l) => !l.startsWith('!'));
  const glob = (g: string): RegExp => new RegExp(`^${g.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
  const excluded = (rel: string): boolean =>
    excludes.some((e) => (e.startsWith('**/') ? glob(e.slice(3)).test(basename(rel)) : rel === e.replace(/\/$/, '') || rel.startsWith(e.endsWith('/') ? e : `${e}/`)));
  const out: string[] = [];
  const walk = (abs: string): void => {
    const rel = relative(ROOT, abs);
    if (excluded(rel) || !existsSync(abs)) return;
    if (statSync(abs).isDirectory()) {
      for (const e of readdirSync(abs).sort()) walk(join(abs, e));
    } else {
      out.push(rel);
    }
  };
  for (const i of includes) walk(join(ROOT, i));
  return out;
}

/** The CA bundle the host's Node and npm trust: the build's `npm ci` gets it as a secret. */
export function hostCaBundle(): string | undefined {
  for (const f of [process.env['NODE_EXTRA_CA_CERTS'], '/etc/ssl/certs/ca-certificates.crt']) {
    if (f !== undefined && f !== '' && existsSync(f)) return f;
  }
  return undefined;
}

export interface BuiltImage {
  /** The tag, as the Helm chart's default names it. */
  ref: string;
  revision: string;
  branch: string;
  /** The docker-archive the image was saved to and loaded from. */
  archive: string;
  /** Whether this run built it (false: loaded from .cache/image). */
  built: boolean;
  buildSeconds: number;
  /** The file given as the build secret, if any. */
  secret: string | undefined;
  /** The private storage's global flags, for buildah and podman alike. */
  storage: string[];
  /** Removes every container, mount and the whole private storage. */
  cleanup: () => Promise<void>;
}

/** Global flags for podman: the private storage, runc (crun refuses hybrid cgroups here), no systemd. */
export function podmanFlags(img: BuiltImage): string[] {
  const dir = img.storage[1] ?? '';
  return [...img.storage, '--tmpdir', join(dir, '..', 'tmp'), '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--runtime', 'runc'];
}

async function unmountUnder(dir: string): Promise<void> {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await execFileP('umount', ['-l', m]).catch(() => undefined);
}

export async function buildImage(): Promise<BuiltImage> {
  if (process.getuid?.() !== 0) throw new Error('this test builds and runs an OCI image with rootful buildah and podman and must run as root (as .ci/run does)');
  const versions = await Promise.all(TOOLS.map(version));
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const bases = fromNames(dockerfile);
  for (const b of bases) {
    if (!new RegExp(`^debian:${DEBIAN_ROOT_SPEC.suite}(-slim)?$`).test(b)) {
      throw new Error(`the Dockerfile builds FROM ${b}; this test imports a ${DEBIAN_ROOT_SPEC.suite} root made by mmdebstrap under the FROM names, so debian-root.ts must follow`);
    }
  }
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const ref = `${IMAGE_REPOSITORY}:${pkg.version}`;
  const [tarball, revision, branch] = await Promise.all([debianRootTarball(), git(['rev-parse', 'HEAD']), git(['rev-parse', '--abbrev-ref', 'HEAD'])]);
  const secret = hostCaBundle();

  const h = createHash('sha256');
  h.update(JSON.stringify({ versions, base: basename(tarball), revision, branch, ref, secret: secret !== undefined }));
  for (const f of ['Dockerfile', '.dockerignore', ...contextFiles()]) h.update(`\0${f}\0`).update(readFileSync(join(ROOT, f)));
  const key = h.digest('hex').slice(0, 24);
  const cacheDir = join(ROOT, '.cache', 'image');
  const archive = join(cacheDir, `${key}.tar`);

  const dir = mkdtempSync(join(tmpdir(), 'oci-image-'));
  mkdirSync(join(dir, 'tmp'));
  const storage = ['--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--storage-driver', 'overlay'];
  const buildah = (args: string[], timeout = 120_000) => execFileP('buildah', [...storage, ...args], { timeout, maxBuffer: 256 * 1024 * 1024 });
  const img: BuiltImage = {
    ref,
    revision,
    branch,
    archive,
    built: false,
    buildSeconds: 0,
    secret,
    storage,
    cleanup: async () => {
      await execFileP('podman', [...podmanFlags(img), 'rm', '--all', '--force'], { timeout: 60_000 }).catch(() => undefined);
      await buildah(['rm', '--all']).catch(() => undefined);
      await execFileP('podman', [...podmanFlags(img), 'image', 'unmount', '--all'], { timeout: 60_000 }).catch(() => undefined);
      await unmountUnder(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    if (!existsSync(archive)) {
      const t0 = Date.now();
      // The base, under every FROM name (qualified as buildah resolves it, and as written).
      const ctr = (await buildah(['from', 'scratch'])).stdout.trim();
      await buildah(['add', ctr, tarball, '/'], 600_000);
      const [first, ...rest] = bases.flatMap((b) => [qualified(b), `localhost/${b}`]);
      if (first === undefined) throw new Error('the Dockerfile has no FROM line');
      await buildah(['commit', '--quiet', ctr, first], 600_000);
      await buildah(['rm', ctr]);
      if (rest.length > 0) await buildah(['tag', first, ...rest]);
      const args = ['bud', '--pull=never', '--isolation=chroot', '--layers=false', '--build-arg', `REVISION=${revision}`, '--build-arg', `BRANCH=${branch}`, '-t', ref, '-f', join(ROOT, 'Dockerfile')];
      if (secret !== undefined) args.push('--secret', `id=${SECRET_ID},src=${secret}`);
      try {
        await buildah([...args, ROOT], 1_500_000);
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string };
        throw new Error(`buildah bud failed:\n${(e.stdout ?? '').slice(-6000)}\n${(e.stderr ?? String(err)).slice(-6000)}`);
      }
      img.buildSeconds = (Date.now() - t0) / 1000;
      img.built = true;
      mkdirSync(cacheDir, { recursive: true });
      const tmp = `${archive}.${process.pid}.tmp`;
      // Uncompressed layers: the archive holds every layer's bytes as they are, which the test searches.
      await buildah(['push', '--quiet', '--disable-compression', ref, `docker-archive:${tmp}:${ref}`], 600_000);
      for (const old of readdirSync(cacheDir)) if (old.endsWith('.tar')) rmSync(join(cacheDir, old), { force: true });
      renameSync(tmp, archive);
    } else {
      await execFileP('podman', [...podmanFlags(img), 'load', '--quiet', '--input', archive], { timeout: 600_000 });
    }
  } catch (err) {
    await img.cleanup();
    throw err;
  }
  return img;
}
