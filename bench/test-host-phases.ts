// Where one test-host scrape's CPU goes, in process: the collection (driver
// read and reading checks), the render (collectors and exposition text) and
// gzip at the level the server uses, each timed with process.cpuUsage over
// many scrapes of one generated host. Complements bench/test-host.ts, which
// measures the whole exporter from outside; run it with the flags bin/ uses
// to see the heap cap's share.
//
//   node_modules/.bin/node [--max-semi-space-size=4 --heap-growing-percent=50] bench/test-host-phases.ts [--domains 1000] [--scrapes 40]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { Collection } from '../src/collectors/collection.ts';
import { COLLECTOR_DEFS, defaultOn } from '../src/collectors/index.ts';
import { generateHost } from '../src/drivers/test/default-host.ts';
import { Exposition } from '../src/http/exposition.ts';
import { GZIP_LEVEL } from '../src/http/server.ts';
import { open } from '../src/virt/connection.ts';
import { percentile } from './measure.ts';

const { values: opts } = parseArgs({ options: { domains: { type: 'string', default: '1000' }, scrapes: { type: 'string', default: '40' } } });
const N = Number(opts.domains);
const SCRAPES = Number(opts.scrapes);
if (!Number.isInteger(N) || N < 1) throw new Error(`--domains must be a positive integer, got ${opts.domains}`);
if (!Number.isInteger(SCRAPES) || SCRAPES < 5) throw new Error(`--scrapes must be an integer >= 5, got ${opts.scrapes}`);

const dir = mkdtempSync(join(tmpdir(), 'virt-phases-'));
try {
  const file = join(dir, 'host.json');
  writeFileSync(file, JSON.stringify(generateHost(N)));
  const conn = await open(`test://${file}`, { readOnly: true });
  const collectors = new Set(COLLECTOR_DEFS.filter((d) => defaultOn(d.name)).map((d) => d.name));
  const collection = new Collection(conn, { collectors, timeoutMs: 60_000 });
  const exposition = new Exposition();
  const cpuMs = (): number => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const phases = { collect: [] as number[], render: [] as number[], gzip: [] as number[] };
  let bytes = 0;
  const warmup = 5;
  for (let i = 0; i < SCRAPES + warmup; i++) {
    const t0 = cpuMs();
    const snapshot = await collection.collect();
    const t1 = cpuMs();
    const body = await exposition.render(snapshot, undefined, {}, undefined, 'text');
    const t2 = cpuMs();
    gzipSync(Buffer.concat(body.chunks), { level: GZIP_LEVEL });
    const t3 = cpuMs();
    bytes = body.bytes;
    body.release();
    if (i < warmup) continue;
    phases.collect.push(t1 - t0);
    phases.render.push(t2 - t1);
    phases.gzip.push(t3 - t2);
  }
  const med = (xs: number[]): string => percentile([...xs].sort((a, b) => a - b), 50).toFixed(1);
  process.stdout.write(
    `${N} domains, ${(bytes / 2 ** 20).toFixed(2)} MiB per body, CPU ms per scrape (median of ${SCRAPES}): collect ${med(phases.collect)}, render ${med(phases.render)}, gzip ${med(phases.gzip)} (the gzip figure includes joining the body's chunks)\n`,
  );
  await conn.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
