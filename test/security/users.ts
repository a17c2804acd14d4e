/** Throw-away unprivileged users for the security tests (created with useradd, removed afterwards). */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  remove(): void;
}

function must(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error(`${cmd} is not installed; the security tests need it (Debian packages passwd and util-linux, see .ci/apt-packages.txt)`);
  }
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${String(r.status)}): ${r.stderr}`);
  return r.stdout;
}

/** Creates a system user with no home and no login shell; the tests run as root. */
export function createUser(prefix: string): TestUser {
  if (process.getuid?.() !== 0) throw new Error('the security tests create throw-away users and must run as root');
  const name = `${prefix}${randomBytes(4).toString('hex')}`.slice(0, 31);
  must('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', name]);
  const uid = Number(must('id', ['-u', name]).trim());
  const gid = Number(must('id', ['-g', name]).trim());
  let removed = false;
  return {
    name,
    uid,
    gid,
    remove() {
      if (removed) return;
      removed = true;
      spawnSync('userdel', [name], { encoding: 'utf8' });
      spawnSync('groupdel', [name], { encoding: 'utf8' });
    },
  };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command with exactly `env`, killed after `timeoutMs`. */
export function run(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs a command as `user` (setpriv: real and effective ids, no supplementary groups) with exactly `env`. */
export function runAs(user: TestUser, file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<RunResult> {
  return run('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', file, ...args], env, timeoutMs);
}
