/** Operating-system processes: QEMU started in its own session, short-lived commands, pid files, signals. */
import { createConnection } from 'node:net';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { processAlive } from './proc.ts';
import { VirtError } from '../virt/errors.ts';

export function readPid(file: string): number | undefined {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Live QEMU processes whose command line carries this domain UUID. */
export function qemuPidsFor(uuid: string): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmdline = readFileSync(`/proc/${e}/cmdline`, 'latin1').split('\0');
      if (cmdline.some((a) => a.includes('qemu-system')) && cmdline.includes(uuid) && processAlive(Number(e))) out.push(Number(e));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

export function killQuiet(pid: number, sig: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a short-lived command (QEMU with -daemonize returns once the guest is set up). */
export function runCommand(file: string, args: string[], timeoutMs: number): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      if (stdout.length < 65536) stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      if (stderr.length < 65536) stderr += s;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${file} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Whether a unix socket accepts a connection now (the probe is closed at once). */
function accepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Starts QEMU in the foreground of its own session (no -daemonize: QEMU's
 * seccomp sandbox with spawn=deny and elevateprivileges=deny forbids the
 * fork and setsid it needs), detached from virt-qemud so it outlives a
 * restart. Resolves once QEMU has written its pid file and its QMP socket
 * exists (code 0), or with its exit code and stderr when it ends first.
 */
export function startQemu(file: string, args: string[], opts: { pidFile: string; qmpSocket: string; stderrLog: string; timeoutMs: number; uid?: number; gid?: number }): Promise<CommandResult> {
  const errFd = openSync(opts.stderrLog, 'w', 0o600);
  let child;
  try {
    child = spawn(file, args, { stdio: ['ignore', 'ignore', errFd], detached: true, ...(opts.uid === undefined ? {} : { uid: opts.uid }), ...(opts.gid === undefined ? {} : { gid: opts.gid }) });
  } finally {
    closeSync(errFd);
  }
  const stderr = (): string => {
    try {
      return readFileSync(opts.stderrLog, 'utf8').slice(-65536);
    } catch {
      return '';
    }
  };
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (f: () => void): void => {
      if (done) return;
      done = true;
      clearInterval(poll);
      clearTimeout(timer);
      child.unref();
      f();
    };
    child.on('error', (err) => finish(() => reject(err)));
    child.on('exit', (code) => finish(() => resolve({ code: code ?? 1, stdout: '', stderr: stderr() })));
    // QEMU binds its monitor socket a moment before it listens on it: "set up"
    // means the socket accepts a connection, not merely that its file exists.
    let probing = false;
    const poll = setInterval(() => {
      if (probing || !existsSync(opts.pidFile) || !existsSync(opts.qmpSocket)) return;
      probing = true;
      void accepts(opts.qmpSocket).then((ok) => {
        probing = false;
        if (ok) finish(() => resolve({ code: 0, stdout: '', stderr: '' }));
      });
    }, 20);
    const timer = setTimeout(() => {
      finish(() => {
        child.kill('SIGKILL');
        reject(new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `${file} did not set up within ${opts.timeoutMs} ms`));
      });
    }, opts.timeoutMs);
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
