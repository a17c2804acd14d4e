import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const NODE = `${ROOT}node_modules/.bin/node`;

export interface StartedExporter {
  url: string;
  port: number;
  child: ChildProcess;
  /** Everything the exporter wrote to stderr (its log) so far. */
  log(): string;
  /** SIGTERM and wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/**
 * Spawns bin/virt-exporter on 127.0.0.1 with a free port (port 0, read back
 * from its "listening" log line) and resolves once it serves.
 */
export function startExporter(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<StartedExporter> {
  const child = spawn(`${ROOT}bin/virt-exporter`, ['--web.listen-address=127.0.0.1:0', '--log.format=json', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise<StartedExporter>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`exporter did not start within ${timeoutMs} ms; log:\n${stderr}${stdout}`));
    }, timeoutMs);
    const early = (code: number | null): void => {
      clearTimeout(timer);
      reject(new Error(`exporter exited with code ${String(code)} before listening; log:\n${stderr}${stdout}`));
    };
    child.once('exit', early);
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /"msg":"listening","address":"[^"]*:(\d+)"/.exec(stderr);
      if (m !== null) {
        clearTimeout(timer);
        child.off('exit', early);
        const port = Number(m[1]);
        resolve({
          url: `http://127.0.0.1:${port}`,
          port,
          child,
          log: () => stderr,
          stop: async () => {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
            const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
            const code = await exited;
            clearTimeout(t);
            return code;
          },
        });
      }
    });
  });
}

/** Fetches the metrics page as text, failing on a non-200 status. */
export async function scrape(url: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await fetch(`${url}/metrics`, { headers });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`scrape of ${url} answered ${res.status}: ${body}`);
  return body;
}

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A small parser of the Prometheus text format, enough for assertions. */
export function parseMetrics(text: string): ParsedSample[] {
  const out: ParsedSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`unparseable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2] !== undefined) {
      for (const lm of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[lm[1] ?? ''] = (lm[2] ?? '').replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
      }
    }
    out.push({ name: m[1] ?? '', labels, value: Number(m[3]) });
  }
  return out;
}

/** Value of the one sample matching name and labels; throws when absent or ambiguous. */
export function valueOf(samples: ParsedSample[], name: string, labels: Record<string, string> = {}): number {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length !== 1) throw new Error(`expected one ${name}${JSON.stringify(labels)}, found ${hits.length}`);
  return (hits[0] as ParsedSample).value;
}
