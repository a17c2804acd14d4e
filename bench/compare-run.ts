// `npm run bench -- --compare [--sizes 10,30,60] [--mode paused,running,guest] [--scrapes N] [--repeats N]`:
// rebuilds build/ (what an installation runs), runs bench/compare.ts, and
// replaces its section of docs/benchmarks.md (the rest of the page is kept);
// bench/compare.ts writes docs/benchmarks-compare.svg itself.
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { ROOT } from '../test/helpers/exporter.ts';
import { replaceSection, runChild } from './doc-section.ts';

export const COMPARE_BEGIN = '<!-- side-by-side benchmark: npm run bench -- --compare -->';
export const COMPARE_END = '<!-- end of side-by-side benchmark -->';

export async function runCompare(args: string[]): Promise<void> {
  if (spawnSync('sh', [`${ROOT}scripts/build.sh`], { stdio: 'inherit' }).status !== 0) throw new Error('scripts/build.sh failed');
  const load0 = loadavg()[0] ?? 0;
  const tables = await runChild('bench/compare.ts', args);
  const load1 = loadavg()[0] ?? 0;
  const day = new Date().toISOString().slice(0, 10);
  const where = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.versions.node}`;
  const section = `${COMPARE_BEGIN}
### Measured side by side (\`npm run bench -- --compare ${args.join(' ')}\`)

Run on ${day} (${where}), load average ${load0.toFixed(1)} at the start and ${load1.toFixed(1)} at the end
(on a shared machine the absolute figures move from run to run with its load; the ratios between
stacks within this one interleaved run are what counts). Chart: [benchmarks-compare.svg](benchmarks-compare.svg).

${tables}
${COMPARE_END}`;
  replaceSection(COMPARE_BEGIN, COMPARE_END, section);
  process.stderr.write('updated the side-by-side section of docs/benchmarks.md\n');
  process.stdout.write(`${section}\n`);
}
