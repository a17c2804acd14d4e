import { lstatSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { VirtError } from '../virt/errors.ts';

export type QemudMode = 'system' | 'session';

/** Every file location of one virt-qemud instance. */
export interface QemudPaths {
  mode: QemudMode;
  runtimeDir: string;
  stateDir: string;
  rwSocket: string;
  roSocket: string;
  pidFile: string;
  daemonLog: string;
  /** Definitions, one JSON file per domain (persistent). */
  domainsDir: string;
  /** Managed-save records (persistent). */
  savesDir: string;
  /** Runtime records of running QEMUs: pid, QMP socket (volatile). */
  runDir: string;
  qmpDir: string;
  logDir: string;
}

export interface PathOverrides {
  runtimeDir?: string | undefined;
  stateDir?: string | undefined;
}

/**
 * The base directory of session-mode files: $VIRT_EXPORTER_RUNTIME_DIR, else
 * $XDG_RUNTIME_DIR/virt-exporter, else $XDG_CACHE_HOME/virt-exporter or
 * $HOME/.cache/virt-exporter (as libvirt's session daemons), and only with
 * none of these /tmp/virt-exporter-$UID. Every one of them is checked by
 * checkSessionDirs before anything connects or listens there.
 */
export function sessionBaseDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env['VIRT_EXPORTER_RUNTIME_DIR'];
  if (explicit !== undefined && explicit !== '') return explicit;
  const xdg = env['XDG_RUNTIME_DIR'];
  if (xdg !== undefined && xdg !== '') return join(xdg, 'virt-exporter');
  const cache = env['XDG_CACHE_HOME'];
  if (cache !== undefined && cache.startsWith('/')) return join(cache, 'virt-exporter');
  const home = env['HOME'];
  if (home !== undefined && home.startsWith('/') && home !== '/') return join(home, '.cache', 'virt-exporter');
  return `/tmp/virt-exporter-${process.getuid?.() ?? 0}`;
}

function unsafe(dir: string, why: string): VirtError {
  return new VirtError('VIRT_ERR_UNSAFE_PATH', `refusing to use ${dir}: ${why}; another local user could impersonate virt-qemud there (remove it, or set VIRT_EXPORTER_RUNTIME_DIR to a directory of your own)`);
}

/**
 * A directory the caller may trust: a real directory (not a link) owned by
 * `uid`, not writable by group or others, and, when `private`, with no access
 * at all for them (mode 0700). Created with mode 0700 when missing.
 */
export function checkOwnedDir(dir: string, opts: { uid: number; private: boolean; create: boolean }): void {
  if (opts.create) {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') mkdirSync(dir, { recursive: true, mode: 0o700 });
      else if (code !== 'EEXIST') throw new VirtError('VIRT_ERR_UNSAFE_PATH', `cannot create ${dir}: ${(err as Error).message}`, { cause: err });
    }
  }
  let st;
  try {
    st = lstatSync(dir);
  } catch (err) {
    throw new VirtError('VIRT_ERR_NO_CONNECT', `${dir} does not exist: ${(err as Error).message}`, { cause: err });
  }
  if (st.isSymbolicLink()) throw unsafe(dir, 'it is a symbolic link');
  if (!st.isDirectory()) throw unsafe(dir, 'it is not a directory');
  if (st.uid !== opts.uid) throw unsafe(dir, `it is owned by uid ${st.uid}, not by uid ${opts.uid}`);
  const mask = opts.private ? 0o077 : 0o022;
  if ((st.mode & mask) !== 0) throw unsafe(dir, `its mode is ${(st.mode & 0o777).toString(8).padStart(4, '0')}, ${opts.private ? 'not 0700' : 'writable by group or others'}`);
}

/**
 * Checks (creating when missing) the directories a session-mode client or
 * daemon is about to trust: the session base and the runtime directory must
 * be the caller's own; the derived defaults must be mode 0700. Without
 * `create` (read-only clients) a missing one is VIRT_ERR_NO_CONNECT.
 */
export function checkSessionDirs(paths: QemudPaths, env: NodeJS.ProcessEnv = process.env, create = true): void {
  const uid = process.geteuid?.() ?? 0;
  if (paths.mode === 'system') {
    // qemu:///system is root's: its directory must be root's and not writable by others.
    try {
      checkOwnedDir(paths.runtimeDir, { uid: 0, private: false, create: false });
    } catch (err) {
      if ((err as VirtError).code !== 'VIRT_ERR_NO_CONNECT') throw err;
    }
    return;
  }
  const explicit = env['VIRT_EXPORTER_RUNTIME_DIR'];
  const base = sessionBaseDir(env);
  const derived = explicit === undefined || explicit === '';
  if (derived) {
    const xdg = env['XDG_RUNTIME_DIR'];
    if (xdg !== undefined && xdg !== '') checkOwnedDir(xdg, { uid, private: true, create: false });
  }
  if (paths.runtimeDir.startsWith(base + '/')) checkOwnedDir(base, { uid, private: derived, create });
  checkOwnedDir(paths.runtimeDir, { uid, private: false, create });
}

export function resolvePaths(mode: QemudMode, overrides: PathOverrides = {}, env: NodeJS.ProcessEnv = process.env): QemudPaths {
  const runtimeDir = nonEmpty(overrides.runtimeDir) ?? (mode === 'system' ? '/run/virt-exporter/qemu' : join(sessionBaseDir(env), 'qemu'));
  const stateDir = nonEmpty(overrides.stateDir) ?? (mode === 'system' ? '/var/lib/virt-exporter/qemu' : join(runtimeDir, 'state'));
  return {
    mode,
    runtimeDir,
    stateDir,
    rwSocket: join(runtimeDir, 'virt-qemud-sock'),
    roSocket: join(runtimeDir, 'virt-qemud-sock-ro'),
    pidFile: join(runtimeDir, 'virt-qemud.pid'),
    daemonLog: join(runtimeDir, 'virt-qemud.log'),
    domainsDir: join(stateDir, 'domains'),
    savesDir: join(stateDir, 'saves'),
    runDir: join(runtimeDir, 'run'),
    qmpDir: join(runtimeDir, 'qmp'),
    logDir: join(runtimeDir, 'log'),
  };
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}
