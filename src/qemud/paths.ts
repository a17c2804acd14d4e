import { join } from 'node:path';

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
 * $XDG_RUNTIME_DIR/virt-exporter, else /tmp/virt-exporter-$UID.
 */
export function sessionBaseDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env['VIRT_EXPORTER_RUNTIME_DIR'];
  if (explicit !== undefined && explicit !== '') return explicit;
  const xdg = env['XDG_RUNTIME_DIR'];
  if (xdg !== undefined && xdg !== '') return join(xdg, 'virt-exporter');
  return `/tmp/virt-exporter-${process.getuid?.() ?? 0}`;
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
