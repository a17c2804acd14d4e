import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { PROJECT_ROOT } from './project.ts';

/** The package version, read once from package.json beside src/. */
export const VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
})();

export interface BuildInfo {
  version: string;
  /** Commit the build was made from ('unknown' outside a git checkout or package). */
  revision: string;
  branch: string;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Revision and branch of a git checkout, from the files under .git (no git
 * process): HEAD, the loose ref or packed-refs; .git may be a worktree's
 * "gitdir:" file.
 */
export function gitRevision(root: string): { revision: string; branch: string } | undefined {
  let gitDir = join(root, '.git');
  const file = read(gitDir);
  if (file !== undefined) {
    const m = /^gitdir:\s*(.+)$/m.exec(file);
    if (m?.[1] === undefined) return undefined;
    gitDir = isAbsolute(m[1].trim()) ? m[1].trim() : join(root, m[1].trim());
  }
  const head = read(join(gitDir, 'HEAD'))?.trim();
  if (head === undefined) return undefined;
  if (/^[0-9a-f]{40}$/.test(head)) return { revision: head, branch: 'HEAD' };
  const ref = /^ref:\s*(\S+)$/.exec(head)?.[1];
  if (ref === undefined) return undefined;
  const common = read(join(gitDir, 'commondir'))?.trim();
  const commonDir = common === undefined ? gitDir : isAbsolute(common) ? common : join(gitDir, common);
  let rev = read(join(gitDir, ref))?.trim() ?? read(join(commonDir, ref))?.trim();
  if (rev === undefined) {
    const packed = read(join(commonDir, 'packed-refs')) ?? '';
    rev = packed.split('\n').find((l) => l.endsWith(` ${ref}`))?.split(' ')[0];
  }
  if (rev === undefined || !/^[0-9a-f]{40}$/.test(rev)) return undefined;
  return { revision: rev, branch: ref.replace(/^refs\/heads\//, '') };
}

/**
 * Version, revision and branch: from build-info.json (written by the package
 * and image builds, packaging/build.sh) when present, else from the git
 * checkout the code runs from.
 */
export const BUILD_INFO: BuildInfo = (() => {
  const file = read(join(PROJECT_ROOT, 'build-info.json'));
  if (file !== undefined) {
    try {
      const b = JSON.parse(file) as Partial<Record<keyof BuildInfo, unknown>>;
      const s = (v: unknown): string => (typeof v === 'string' && v !== '' ? v : 'unknown');
      return { version: VERSION, revision: s(b.revision), branch: s(b.branch) };
    } catch {
      // fall through to git
    }
  }
  const git = gitRevision(PROJECT_ROOT) ?? gitRevision(dirname(PROJECT_ROOT));
  return { version: VERSION, revision: git?.revision ?? 'unknown', branch: git?.branch ?? 'unknown' };
})();
