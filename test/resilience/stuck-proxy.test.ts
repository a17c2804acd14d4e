// virt-proxy hung, for the xen driver (issue 13, item 1): the real virt-proxy
// (built from native/, over the fake Xen host) stopped with SIGSTOP, as a
// daemon on its socket (non-root exporter) and as the exporter's own --stdio
// child (root exporter, which replaces a child that misses its deadline); and
// a stand-in peer on the socket that accepts and never answers. Whatever the
// deadline, every scrape answers within it, the stuck part is visible
// (virt_collector_success 0), the scrapes after SIGCONT (or the replacement)
// are whole again, and no file descriptor or process is left behind.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { parseMetrics, startExporter, type ParsedSample, type StartedExporter } from '../helpers/exporter.ts';
import { buildNative, startXenFixture, type XenFixture } from '../drivers/xen/fixture.ts';
import { waitFor } from '../qemud/helpers.ts';

// Rendering and the HTTP round trip on top of the collection deadline.
const SLACK_MS = 600;
const DOMAINS = ['Domain-0', 'web', 'db'];

let f: XenFixture;
let proxyDaemon: ChildProcess;

function get(samples: ParsedSample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

async function timedScrape(e: StartedExporter): Promise<{ ms: number; samples: ParsedSample[] }> {
  const t0 = Date.now();
  const res = await fetch(`${e.url}/metrics`, { headers: { Connection: 'close' }, signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  const ms = Date.now() - t0;
  assert.equal(res.status, 200, text);
  return { ms, samples: parseMetrics(text) };
}

function failing(samples: ParsedSample[]): string[] {
  return samples.filter((s) => s.name === 'virt_collector_success' && s.value === 0).map((s) => s.labels['collector'] ?? '?').sort();
}

function whole(samples: ParsedSample[]): boolean {
  return get(samples, 'virt_up', { driver: 'xen' }) === 1 && failing(samples).length === 0 && DOMAINS.every((d) => get(samples, 'virt_domain_info', { domain: d }) !== undefined || get(samples, 'virt_domain_state', { domain: d, state: 'running' }) !== undefined);
}

/** The fd count once the last scrape's connection has been closed on the server side too. */
async function fds(pid: number): Promise<number> {
  let last = readdirSync(`/proc/${pid}/fd`).length;
  for (let i = 0; i < 40; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const now = readdirSync(`/proc/${pid}/fd`).length;
    if (now === last) return now;
    last = now;
  }
  return last;
}

/** The exporter's virt-proxy --stdio child. */
function stdioChild(exporterPid: number): number {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === exporterPid && readlinkSync(`/proc/${d}/exe`).endsWith('/virt-proxy')) return Number(d);
    } catch {
      // exited meanwhile
    }
  }
  throw new Error(`no virt-proxy child of the exporter (pid ${exporterPid})`);
}

function flags(privileged: 'root' | 'user', deadline: string): string[] {
  // Xend and XenStore answer throughout; only virt-proxy hangs.
  return ['--connect=xen:///', `--collect.timeout=${deadline}`, '--xen.retry-ms=200', ...Object.entries({ ...f.settings, 'xen.privileged': privileged }).map(([k, v]) => `--${k}=${v}`)];
}

/** Stops `pid` for three scrapes, then resumes it; checks each scrape's deadline, the visible failure, the recovery and the fds. */
async function stuckThenResumed(e: StartedExporter, deadlineMs: number, stop: () => void | Promise<void>, resume: () => void): Promise<string[]> {
  await waitFor(async () => whole((await timedScrape(e)).samples), 20_000, 'a whole scrape');
  const pid = e.child.pid as number;
  const fdsBefore = await fds(pid);
  await stop();
  const seen = new Set<string>();
  try {
    for (let i = 0; i < 3; i++) {
      const { ms, samples } = await timedScrape(e);
      assert.ok(ms <= deadlineMs + SLACK_MS, `scrape ${i} took ${ms} ms with a ${deadlineMs} ms deadline`);
      const bad = failing(samples);
      assert.ok(bad.length > 0, `scrape ${i}: the stuck virt-proxy is not visible (every collector reports success)`);
      if (bad.includes('domain')) assert.equal(get(samples, 'virt_domains'), undefined, 'the domain list is unknown, not a confident number');
      for (const b of bad) seen.add(b);
    }
  } finally {
    resume();
  }
  const t0 = Date.now();
  await waitFor(async () => whole((await timedScrape(e)).samples), 15_000, 'a whole scrape after the resume');
  const recoveryMs = Date.now() - t0;
  const fdsAfter = await fds(pid);
  assert.ok(fdsAfter <= fdsBefore, `file descriptors left behind in the exporter: ${fdsBefore} before, ${fdsAfter} after`);
  process.stdout.write(`# failing while stuck: ${[...seen].join(', ')}; whole again ${recoveryMs} ms after the resume\n`);
  return [...seen];
}

before(async () => {
  await buildNative();
  f = await startXenFixture();
  proxyDaemon = await f.startProxyDaemon();
  f.fx.host.advance(12);
  await f.fx.host.flushed();
});

after(async () => {
  await f?.stop();
});

for (const deadline of ['2s', '700ms']) {
  const deadlineMs = deadline.endsWith('ms') ? Number(deadline.slice(0, -2)) : Number(deadline.slice(0, -1)) * 1000;

  void describe(`xen:/// with virt-proxy hung, --collect.timeout=${deadline}`, { timeout: 90_000 }, () => {
    const env = (): NodeJS.ProcessEnv => ({ VIRT_FAKE_XEN_STATE: f.fx.paths.stateFile });

    void it('non-root: the virt-proxy daemon on its socket stopped with SIGSTOP, then SIGCONT', async () => {
      const e = await startExporter(flags('user', deadline), env());
      try {
        const pid = proxyDaemon.pid as number;
        const fdsProxy = await fds(pid);
        await stuckThenResumed(e, deadlineMs, () => void process.kill(pid, 'SIGSTOP'), () => void process.kill(pid, 'SIGCONT'));
        assert.equal(await fds(pid), fdsProxy, 'file descriptors left behind in virt-proxy');
      } finally {
        await e.stop();
      }
    });

    void it('root: the exporter\'s own virt-proxy --stdio child stopped with SIGSTOP is replaced; no process or fd left behind', async () => {
      const e = await startExporter(flags('root', deadline), env());
      let child: number | undefined;
      try {
        await waitFor(async () => whole((await timedScrape(e)).samples), 20_000, 'a whole scrape');
        const pid = e.child.pid as number;
        const fdsBefore = await fds(pid);
        child = stdioChild(pid);
        process.kill(child, 'SIGSTOP');
        const { ms, samples } = await timedScrape(e);
        assert.ok(ms <= deadlineMs + SLACK_MS, `the scrape took ${ms} ms with a ${deadlineMs} ms deadline`);
        assert.ok(failing(samples).length > 0, 'the stuck virt-proxy is not visible (every collector reports success)');
        // The child that missed its deadline is killed and a new one started: whole again without any SIGCONT.
        const t0 = Date.now();
        await waitFor(async () => whole((await timedScrape(e)).samples), 15_000, 'a whole scrape from a new virt-proxy child');
        const recoveryMs = Date.now() - t0;
        const old = child;
        await waitFor(() => !existsSync(`/proc/${old}`), 10_000, 'the stopped virt-proxy child to be killed and reaped');
        assert.notEqual(stdioChild(pid), old);
        const fdsAfter = await fds(pid);
        assert.ok(fdsAfter <= fdsBefore, `file descriptors left behind in the exporter: ${fdsBefore} before, ${fdsAfter} after`);
        process.stdout.write(`# stopped --stdio child: failing ${failing(samples).join(', ')}; a new child served a whole scrape ${recoveryMs} ms later\n`);
      } finally {
        if (child !== undefined && existsSync(`/proc/${child}`)) process.kill(child, 'SIGCONT');
        await e.stop();
      }
    });
  });
}

void describe('xen:/// with a stand-in virt-proxy that accepts and never answers', { timeout: 60_000 }, () => {
  let server: Server | undefined;
  const held: Socket[] = [];
  after(async () => {
    for (const s of held) s.destroy();
    await new Promise((r) => (server === undefined ? r(undefined) : server.close(r)));
  });

  void it('scrapes answer within the deadline with the failure visible; the real one back, they are whole again; no fd left behind', async () => {
    const socket = f.settings['xen.proxy-socket'] as string;
    const e = await startExporter(flags('user', '1s'), { VIRT_FAKE_XEN_STATE: f.fx.paths.stateFile });
    try {
      await stuckThenResumed(
        e,
        1000,
        async () => {
          // The real daemon goes away; something else takes its socket and swallows every request.
          // Scraping starts only once the stand-in listens: in the gap a refused connection falls
          // back to Xend at once, and nothing would be stuck.
          const gone = new Promise((r) => proxyDaemon.once('exit', r));
          proxyDaemon.kill('SIGKILL');
          await gone;
          rmSync(socket, { force: true });
          const standIn = createServer((s) => {
            held.push(s);
            s.on('data', () => undefined);
            s.on('error', () => undefined);
          });
          server = standIn;
          await new Promise<void>((resolve) => standIn.listen(socket, resolve));
        },
        () => {
          for (const s of held) s.destroy();
          server?.close();
          server = undefined;
          // A stand-in cannot be resumed: the real daemon is started again in its place.
          void f.startProxyDaemon().then((c) => (proxyDaemon = c));
        },
      );
    } finally {
      await e.stop();
    }
    assert.ok(held.length > 0, 'the exporter never connected to the stand-in');
  });
});
