// Errors only through VirtError (docs/errors.md): nothing in src/ outside
// src/virt/errors.ts creates a plain Error or declares an error class of its
// own on Error, so every failure carries a stable code.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const ALLOWED = new Set(['virt/errors.ts']);
const FORBIDDEN: Array<[RegExp, string]> = [
  [/\bnew\s+Error\s*\(/, 'a plain Error (use new VirtError(code, message))'],
  [/\bclass\s+\w+\s+extends\s+Error\b/, 'an error class on Error (extend VirtError, or use a code)'],
];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** Offending lines of one file's text, comments left out. */
export function offences(text: string): string[] {
  const out: string[] = [];
  let inBlock = false;
  text.split('\n').forEach((raw, i) => {
    let line = raw;
    if (inBlock) {
      const end = line.indexOf('*/');
      if (end < 0) return;
      line = line.slice(end + 2);
      inBlock = false;
    }
    line = line.replace(/\/\*.*?\*\//g, '');
    const open = line.indexOf('/*');
    if (open >= 0) {
      inBlock = true;
      line = line.slice(0, open);
    }
    line = line.replace(/(^|\s)\/\/.*$/, '');
    for (const [re, what] of FORBIDDEN) if (re.test(line)) out.push(`line ${i + 1}: ${what}: ${raw.trim()}`);
  });
  return out;
}

void describe('errors only through VirtError', () => {
  void it('the check finds what it looks for, and not in comments', () => {
    assert.equal(offences("throw new Error('x');").length, 1);
    assert.equal(offences('reject(new Error(`x`));').length, 1);
    assert.equal(offences('export class Oops extends Error {').length, 1);
    assert.equal(offences("throw new VirtError('VIRT_ERR_RPC', 'x');").length, 0);
    assert.equal(offences('class QmpCommandError extends VirtError {').length, 0);
    assert.equal(offences('// never new Error( here\n/* nor\n new Error( here */\nconst a = 1;').length, 0);
  });

  void it('no file in src/ outside src/virt/errors.ts makes a plain Error or an error class of its own', () => {
    const found: string[] = [];
    const files = sources(SRC);
    assert.ok(files.length > 50, `src/ has ${files.length} files`);
    for (const file of files) {
      const name = relative(SRC, file);
      if (ALLOWED.has(name)) continue;
      for (const o of offences(readFileSync(file, 'utf8'))) found.push(`src/${name} ${o}`);
    }
    assert.deepEqual(found, []);
  });
});
