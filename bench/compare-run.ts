// `npm run bench -- --compare [--sizes 10,30,60] [--mode paused,running,guest] [--scrapes N] [--repeats N]`:
// rebuilds build/ (what an installation runs), runs bench/compare.ts, and
// replaces its section of docs/benchmarks.md (the rest of the page is kept);
// bench/compare.ts writes docs/benchmarks-compare.svg itself.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { ROOT } from '../test/helpers/exporter.ts';

export const COMPARE_BEGIN = '<!-- side-by-side benchmark: npm run bench -- --compare -->';
export const COMPARE_END = '<!-- end of side-by-side benchmark -->';

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(`${ROOT}node_modules/.bin/node`, [`${ROOT}bench/compare.ts`, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`bench/compare.ts exited ${String(code)}`))));
  });
}

export async function runCompare(args: string[]): Promise<void> {
  if (spawnSync('sh', [`${ROOT}scripts/build.sh`], { stdio: 'inherit' }).status !== 0) throw new Error('scripts/build.sh failed');
  const load0 = loadavg()[0] ?? 0;
  const tables = await run(args);
  const load1 = loadavg()[0] ?? 0;
  const day = new Date().toISOString().slice(0, 10);
  const where = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.versions.node}`;
  const section = `${COMPARE_BEGIN}
### Measured side by side (\`npm run bench -- --compare ${args.join(' ')}\`)

Run on ${day} (${where}), load average ${load0.toFixed(1)} at the start and ${load1.toFixed(1)} at the end
(a machine shared by eight engineers: absolute figures move from run to run; the ratios between
stacks within this one interleaved run are what counts). Chart: [benchmarks-compare.svg](benchmarks-compare.svg).

${tables}
${COMPARE_END}`;
  const file = `${ROOT}docs/benchmarks.md`;
  const old = readFileSync(file, 'utf8');
  const a = old.indexOf(COMPARE_BEGIN);
  const b = old.indexOf(COMPARE_END);
  writeFileSync(file, a >= 0 && b > a ? old.slice(0, a) + section + old.slice(b + COMPARE_END.length) : `${old.trimEnd()}\n\n${section}\n`);
  process.stderr.write('updated the side-by-side section of docs/benchmarks.md\n');
  process.stdout.write(`${section}\n`);
}
