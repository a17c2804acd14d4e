// What bench/run.ts and bench/compare-run.ts share: running one benchmark as
// a child (its table on stdout, its progress on stderr) and replacing its
// marked section of docs/benchmarks.md, keeping the rest of the page.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { ROOT } from '../test/helpers/exporter.ts';

/** Runs bench/SCRIPT on the project's Node; resolves with its stdout, trimmed. */
export function runChild(script: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(`${ROOT}node_modules/.bin/node`, [`${ROOT}${script}`, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`${script} exited ${String(code)}`))));
  });
}

/** Replaces the part of docs/benchmarks.md between two markers (appends it when absent), keeping the rest. */
export function replaceSection(begin: string, end: string, section: string): void {
  const file = `${ROOT}docs/benchmarks.md`;
  const old = readFileSync(file, 'utf8');
  const a = old.indexOf(begin);
  const b = old.indexOf(end);
  writeFileSync(file, a >= 0 && b > a ? old.slice(0, a) + section + old.slice(b + end.length) : `${old.trimEnd()}\n\n${section}\n`);
}
