/**
 * The qemu driver: a client of virt-qemud. qemu:///system talks to the
 * supervisor under /run/virt-exporter, qemu:///session to the one under the
 * user's runtime directory. Read-only connections use the read-only socket.
 *
 * When no supervisor answers, a read-write connection starts one in the
 * background, with an idle timeout (it exits once it runs no domain and has
 * no client). A read-only connection (virtctl -r, list, dominfo, domstats, the
 * exporter's collectors) never starts one where none was running, nor after
 * one was stopped cleanly: it only restarts a supervisor that died and left
 * its socket and pid file behind, so that running domains are watched again.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../project.ts';
import { isVirtError, toVirtError, VirtError } from '../virt/errors.ts';
import type { VirtUri } from '../virt/uri.ts';
import type { Driver, OpenContext } from './driver.ts';
import { clientStubs, OPERATIONS, type Wire } from './ops.ts';
import type { BulkReadOptions, ShutdownOptions } from './types.ts';
import { QemudClient } from './qemu/client.ts';
import { checkSessionDirs, resolvePaths, type QemudMode, type QemudPaths } from '../qemud-shared/paths.ts';
import { supervisorDied } from '../qemud-shared/pidfile.ts';
import { DAEMON_KEYS, QEMU } from '../qemud-shared/settings.ts';

const DEFAULT_QEMUD = join(PROJECT_ROOT, 'bin', 'virt-qemud');

/** Starts virt-qemud detached, logging to its log file; returns once it is spawned. */
export function spawnQemud(binary: string, mode: QemudMode, paths: QemudPaths, settings: OpenContext['settings']): Promise<void> {
  mkdirSync(paths.runtimeDir, { recursive: true, mode: 0o755 });
  const args = [mode === 'system' ? '--system' : '--session', '--runtime-dir', paths.runtimeDir, '--state-dir', paths.stateDir];
  for (const k of DAEMON_KEYS) {
    if (k === 'runtime-dir' || k === 'state-dir') continue;
    const v = settings[`qemu.${k}`];
    if (v !== undefined && v !== '') args.push(`--${k}`, String(v));
  }
  // An auto-started supervisor goes away when it is no longer needed.
  args.push('--idle-timeout-seconds', String(QEMU.get(settings, 'idle-timeout-seconds')));
  const log = openSync(paths.daemonLog, 'a', 0o600);
  try {
    const child = spawn(binary, args, { detached: true, cwd: '/', stdio: ['ignore', log, log] });
    return new Promise((resolve, reject) => {
      child.once('error', (err) => reject(new VirtError('VIRT_ERR_NO_CONNECT', `cannot start ${binary}: ${err.message}`, { cause: err })));
      child.once('spawn', () => {
        child.unref();
        resolve();
      });
    });
  } finally {
    closeSync(log);
  }
}

/**
 * How long virt-qemud may take over a bulk read: inside our own read timeout
 * and inside the caller's deadline, with a margin for the round trip, so that
 * one stuck domain comes back as an error entry rather than a lost read.
 */
export function supervisorBudget(readTimeoutMs: number, deadline: number | undefined, now = Date.now()): number {
  const own = readTimeoutMs - 250;
  if (deadline === undefined) return Math.max(100, own);
  const left = deadline - now;
  const margin = Math.max(50, Math.round(left * 0.1));
  return Math.max(20, Math.min(own, left - margin));
}

export function openQemuDriver(uri: VirtUri, ctx: OpenContext): Promise<Driver> {
  const mode: QemudMode = uri.path === '/system' ? 'system' : 'session';
  const s = ctx.settings;
  const paths = resolvePaths(mode, { runtimeDir: QEMU.get(s, 'runtime-dir'), stateDir: QEMU.get(s, 'state-dir') });
  // Never talk to a socket in a directory another local user could have made (issue 12, finding 5);
  // a read-only connection checks what exists but creates nothing (issue 15).
  try {
    checkSessionDirs(paths, process.env, !ctx.readOnly);
  } catch (err) {
    if (ctx.readOnly && isVirtError(err, 'VIRT_ERR_NO_CONNECT')) {
      return Promise.reject(new VirtError('VIRT_ERR_NO_CONNECT', `no virt-qemud runs for ${uri.text} (${err.message}); read-only connections never start virt-qemud: start it (systemctl start virt-qemud, or virt-qemud --${mode}) or run a write command`));
    }
    return Promise.reject(toVirtError(err, 'VIRT_ERR_UNSAFE_PATH'));
  }
  const binary = QEMU.get(s, 'qemud-binary') || DEFAULT_QEMUD;
  const readTimeout = QEMU.get(s, 'read-timeout-ms');
  const writeTimeout = QEMU.get(s, 'request-timeout-ms');
  const client = new QemudClient({
    socketPath: ctx.readOnly ? paths.roSocket : paths.rwSocket,
    maxFrameBytes: QEMU.get(s, 'max-frame-bytes'),
    connectTimeoutMs: QEMU.get(s, 'connect-timeout-ms'),
    logger: ctx.logger,
    noConnectHint: ctx.readOnly
      ? `read-only connections never start virt-qemud: start it (systemctl start virt-qemud, or virt-qemud --${mode}) or run a write command`
      : 'start it with systemctl start virt-qemud or virt-qemud --' + mode,
    ...(QEMU.get(s, 'autostart')
      ? {
          autostart: async (why: 'missing' | 'refused') => {
            if (ctx.readOnly && !(why === 'refused' && supervisorDied(paths))) return false;
            await spawnQemud(binary, mode, paths, s);
            return true;
          },
        }
      : {}),
  });
  const graceSeconds = s['qemu.shutdown-grace-seconds'];
  const stubs = clientStubs(
    (op, wire: Wire, write) => (write ? client.call(op, wire.args, { timeoutMs: writeTimeout }) : client.call(op, wire.args, { timeoutMs: readTimeout, signal: wire.signal, idempotent: true })),
    'virt-qemud',
    {
      // virt-qemud gets a budget inside our own read timeout and the collection's deadline.
      allDomainStats: (opts: BulkReadOptions) => ({ args: [{ groups: [...opts.groups], inactive: opts.inactive ?? false, timeoutMs: supervisorBudget(readTimeout, opts.deadline) }], signal: opts.signal }),
      shutdown: (key: string, opts?: ShutdownOptions) => ({
        args: [key, { force: opts?.force ?? false, ...(graceSeconds !== undefined && graceSeconds !== '' ? { graceSeconds: Number(graceSeconds) } : {}) }],
      }),
    },
  );
  const driver: Driver = {
    name: 'qemu',
    close: () => {
      client.close();
      return Promise.resolve();
    },
    ...stubs,
  };
  // Connect (starting a supervisor if needed) now, so a broken setup fails at open.
  return client.call('ping', [], { timeoutMs: QEMU.get(s, 'connect-timeout-ms') }).then(
    (reply) => {
      OPERATIONS.ping.result(reply, 'virt-qemud');
      return driver;
    },
    (err: unknown) => {
      client.close();
      throw err;
    },
  );
}
