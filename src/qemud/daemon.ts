/** virt-qemud process lifecycle: single-instance lock, supervisor, listeners, signals. */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import type { Logger } from '../util/logger.ts';
import { VirtError } from '../virt/errors.ts';
import { acquireInstanceLock } from './instance-lock.ts';
import { activatedSockets } from './systemd-sockets.ts';
import { checkSessionDirs, resolvePaths, type QemudMode, type QemudPaths } from '../qemud-shared/paths.ts';
import { processAlive } from './proc.ts';
import { QemudServer, type ClientLimits } from './server.ts';
import { Store } from './store.ts';
import { Supervisor } from './supervisor.ts';
import { chooseQemuUser } from './dac.ts';
import { chooseImageDirs } from './images.ts';

export interface DaemonOptions {
  mode: QemudMode;
  runtimeDir?: string;
  stateDir?: string;
  emulator?: string;
  qmpTimeoutMs: number;
  commandTimeoutMs: number;
  startTimeoutMs: number;
  saveTimeoutMs: number;
  shutdownGraceSeconds: number;
  balloonStatsIntervalSeconds: number;
  vcpuRefreshSeconds: number;
  maxFrameBytes: number;
  roSocketGroup?: string;
  adminGroup?: string;
  /** User QEMU runs as; empty: a default (see chooseQemuUser). */
  qemuUser?: string;
  /** Directories a definition's files must lie in; empty: the mode's default (see chooseImageDirs). */
  imageDirs?: string[];
  limits?: Partial<ClientLimits>;
  logger: Logger;
}

export interface RunningDaemon {
  paths: QemudPaths;
  supervisor: Supervisor;
  server: QemudServer;
  stop(): Promise<void>;
}

/** Takes the pid file exclusively; false when another live virt-qemud holds it. */
function acquirePidFile(path: string): boolean {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let other: number | undefined;
    try {
      other = Number(readFileSync(path, 'utf8').trim());
    } catch {
      continue;
    }
    if (other !== undefined && Number.isInteger(other) && other > 0 && other !== process.pid && processAlive(other)) {
      let cmd = '';
      try {
        cmd = readFileSync(`/proc/${other}/cmdline`, 'latin1');
      } catch {
        cmd = '';
      }
      if (cmd.includes('qemud')) return false;
    }
    try {
      unlinkSync(path);
    } catch {
      // raced with another starter; retry
    }
  }
  return false;
}

export async function startDaemon(o: DaemonOptions): Promise<RunningDaemon> {
  const paths = resolvePaths(o.mode, { runtimeDir: o.runtimeDir, stateDir: o.stateDir });
  if (o.mode === 'session') checkSessionDirs(paths);
  new Store(paths, o.logger).init();
  const lock = await acquireInstanceLock(paths.runtimeDir);
  if (!acquirePidFile(paths.pidFile)) {
    await lock.release();
    throw new VirtError('VIRT_ERR_OPERATION_INVALID', `another virt-qemud is already running for ${paths.runtimeDir}`);
  }
  const qemuUser = chooseQemuUser(o.mode, o.qemuUser, o.logger);
  const supervisor = new Supervisor({
    paths,
    logger: o.logger,
    qmpTimeoutMs: o.qmpTimeoutMs,
    commandTimeoutMs: o.commandTimeoutMs,
    shutdownGraceSeconds: o.shutdownGraceSeconds,
    balloonStatsIntervalSeconds: o.balloonStatsIntervalSeconds,
    vcpuRefreshSeconds: o.vcpuRefreshSeconds,
    startTimeoutMs: o.startTimeoutMs,
    saveTimeoutMs: o.saveTimeoutMs,
    ...(o.emulator !== undefined && o.emulator !== '' ? { emulator: o.emulator } : {}),
    // Safe defaults (issue 12, finding 4): confined to image directories, and a system QEMU as an unprivileged user when one exists.
    imageDirs: chooseImageDirs(o.mode, o.imageDirs ?? [], paths.runtimeDir, o.logger),
    ...(qemuUser === undefined ? {} : { qemuUser }),
  });
  supervisor.init();
  const server = new QemudServer({ supervisor, logger: o.logger, maxFrameBytes: o.maxFrameBytes, ...(o.roSocketGroup ? { roSocketGroup: o.roSocketGroup } : {}), ...(o.adminGroup ? { adminGroup: o.adminGroup } : {}), ...(o.limits ? { limits: o.limits } : {}) });
  const activated = activatedSockets();
  if (activated === undefined) await server.listen(paths.rwSocket, paths.roSocket);
  else await server.listenFds(activated.rw, activated.ro);
  o.logger.info('virt-qemud listening', { rw: paths.rwSocket, ro: paths.roSocket, pid: process.pid, ...(activated === undefined ? {} : { systemdSocket: true }) });
  let stopped = false;
  return {
    paths,
    supervisor,
    server,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.close();
      await supervisor.close();
      try {
        if (readFileSync(paths.pidFile, 'utf8').trim() === String(process.pid)) unlinkSync(paths.pidFile);
      } catch {
        // already gone
      }
      await lock.release();
    },
  };
}
