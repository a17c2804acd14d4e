import { spawn } from 'node:child_process';

/**
 * Runs Debian's `promtool check metrics` on a scrape. Rejects with promtool's
 * findings when it reports any problem (warnings included), and fails
 * clearly when promtool is not installed: it is a CI prerequisite, never skipped.
 */
export function promtoolCheck(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', (err) => reject(new Error(`promtool is required (Debian package "prometheus"): ${err.message}`)));
    child.once('exit', (code) => {
      if (code === 0 && out.trim() === '') resolve();
      else reject(new Error(`promtool check metrics failed (exit ${String(code)}):\n${out}`));
    });
    child.stdin.end(text);
  });
}
