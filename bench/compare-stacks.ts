// What bench/libvirt.ts and bench/compare.ts share: /proc readings (process
// and non-vCPU thread CPU, RSS), curl as the scraping client, and the
// exporters under test over a private libvirtd (virt-exporter's libvirt
// driver, Debian's prometheus-libvirt-exporter).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { startExporter, type StartedExporter } from '../test/helpers/exporter.ts';
import { domainXml, type PrivateLibvirtd } from '../test/drivers/libvirt/daemon.ts';

export const KUMINA = '/usr/bin/prometheus-libvirt-exporter';
export const TICK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

function statTicks(file: string): number {
  try {
    const st = readFileSync(file, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** utime + stime of a process, in clock ticks (0 once it is gone). */
export function ticks(pid: number): number {
  return statTicks(`/proc/${pid}/stat`);
}

/**
 * CPU ticks of a QEMU outside its vCPU threads ("CPU n/TCG", named with
 * debug-threads=on, as libvirt and virt-qemud start QEMU): where QMP is
 * answered, without the guest's own work.
 */
export function qemuTicks(pid: number): number {
  let vcpu = 0;
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  for (const tid of tids) {
    let comm = '';
    try {
      comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8');
    } catch {
      continue;
    }
    if (/^CPU \d+\//.test(comm)) vcpu += statTicks(`/proc/${pid}/task/${tid}/stat`);
  }
  return ticks(pid) - vcpu;
}

export function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

export function pct(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** One scrape with curl (a native client, as Prometheus is): its own request-to-last-byte timer, and the decoded body. */
export function curl(url: string, gzip = false): { ms: number; body: string; bytes: number } {
  const r = spawnSync('curl', ['-s', ...(gzip ? ['--compressed'] : []), '-w', '\n%{time_total} %{size_download}', url], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`curl ${url} failed (${String(r.status)}): ${r.stderr}`);
  const i = r.stdout.lastIndexOf('\n');
  const [t, size] = r.stdout.slice(i + 1).split(' ');
  return { ms: Number(t) * 1000, body: r.stdout.slice(0, i), bytes: Number(size) };
}

export interface Target {
  name: string;
  url: string;
  pid: number;
  stop(): Promise<void>;
}

export async function startKumina(lv: PrivateLibvirtd): Promise<Target> {
  // A side-by-side figure without the other side would read as a win by default.
  if (!existsSync(KUMINA)) throw new Error(`${KUMINA} is missing: the side-by-side benchmarks need Debian's prometheus-libvirt-exporter (apt-get install prometheus-libvirt-exporter)`);
  const port = await freePort();
  const child: ChildProcess = spawn(KUMINA, [`--web.listen-address=127.0.0.1:${port}`, `--libvirt.uri=qemu+unix:///system?socket=${lv.rwSocket}`], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}/metrics`;
  for (let i = 0; i < 200; i++) {
    if (spawnSync('curl', ['-sf', '-o', '/dev/null', url]).status === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    name: 'prometheus-libvirt-exporter 0.2.0 (kumina, Debian)',
    url,
    pid: child.pid ?? 0,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/** virt-exporter as its own process, the collectors' timeout raised so that a loaded machine shows its latency rather than timeouts. */
export async function startVirtExporter(name: string, connect: string, env: NodeJS.ProcessEnv = {}): Promise<Target> {
  const exp: StartedExporter = await startExporter([`--connect=${connect}`, '--collect.timeout=30s'], env, 60_000);
  return { name, url: `${exp.url}/metrics`, pid: exp.child.pid ?? 0, stop: async () => void (await exp.stop()) };
}

export function startOurs(lv: PrivateLibvirtd): Promise<Target> {
  return startVirtExporter('virt-exporter, libvirt driver', `libvirt+qemu:///system?socket=${lv.rwSocket}`);
}

/** The QEMUs a private libvirtd started (its pid files). */
export function libvirtQemuPids(lv: PrivateLibvirtd): number[] {
  const dir = join(lv.dir, 'run', 'qemu');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.pid')).map((f) => Number(readFileSync(join(dir, f), 'utf8').trim())).filter((p) => p > 1);
}

/** Defines the benchmarks' no-OS domain (64 MiB, a 16 MiB qcow2 on virtio, a user-mode NIC, a balloon) and starts it, paused or running. */
export async function startNoOsDomain(lv: PrivateLibvirtd, name: string, paused: boolean): Promise<void> {
  const file = join(lv.dir, `${name}.xml`);
  writeFileSync(file, domainXml({ name, disk: await lv.qemuImg(`${name}.qcow2`), userNic: true }));
  await lv.virsh(['define', file]);
  await lv.virsh(['start', ...(paused ? ['--paused'] : []), name]);
}
