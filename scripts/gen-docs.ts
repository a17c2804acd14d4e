// Writes the generated reference pages and README sections from the code.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { GENERATED_PAGES, refreshReadme } from '../src/docs/reference.ts';
import { refreshOtelDoc } from '../src/telemetry/doc.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
for (const [path, gen] of Object.entries(GENERATED_PAGES)) {
  writeFileSync(root + path, gen());
  console.log(`wrote ${path}`);
}
const readme = root + 'README.md';
writeFileSync(readme, refreshReadme(readFileSync(readme, 'utf8')));
console.log('refreshed README.md');
const otel = root + 'docs/opentelemetry.md';
writeFileSync(otel, refreshOtelDoc(readFileSync(otel, 'utf8')));
console.log('refreshed docs/opentelemetry.md');
