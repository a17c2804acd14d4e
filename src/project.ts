import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The project directory (where package.json, bin/ and native/ live), found by
 * walking up from this module, so that it is the same whether the code runs
 * from src/ (type stripping) or from the compiled copy under build/.
 */
export const PROJECT_ROOT: string = (() => {
  const here = dirname(fileURLToPath(import.meta.url));
  let dir = here;
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bin', 'node-runner.sh'))) return dir;
    dir = dirname(dir);
  }
  return dirname(here);
})();
