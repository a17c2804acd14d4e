import { closeSync, mkdirSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, sep } from 'node:path';
import type { DomainDefinition } from './definition.ts';
import type { QemudMode } from '../qemud-shared/paths.ts';
import type { Logger } from '../util/logger.ts';
import { VirtError } from '../virt/errors.ts';

/** The image directory of qemu:///system when qemu.image-dirs is not set (the Debian package creates it). */
export const SYSTEM_IMAGE_DIR = '/var/lib/virt-exporter/images';

/**
 * The directories a definition's files must lie in: qemu.image-dirs when set
 * (`/` allows the whole host, device nodes still refused); otherwise
 * /var/lib/virt-exporter/images for qemu:///system and RUNTIME-DIR/images
 * (created, mode 0700) for qemu:///session. Never "anywhere" by default.
 */
export function chooseImageDirs(mode: QemudMode, configured: readonly string[], runtimeDir: string, logger: Logger): string[] {
  if (configured.length > 0) {
    logger.info('definitions may name files in the configured image directories', { imageDirs: configured.join(','), source: 'image-dirs' });
    return [...configured];
  }
  let dir = SYSTEM_IMAGE_DIR;
  if (mode === 'session') {
    dir = join(runtimeDir, 'images');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } else {
    let ok = false;
    try {
      ok = statSync(dir).isDirectory();
    } catch {
      ok = false;
    }
    if (!ok) logger.warn(`the default image directory ${dir} does not exist: create it (mode 0711, root's) for disks, kernels and console logs, or set --image-dirs`, { imageDirs: dir });
  }
  logger.info('definitions may name files in the default image directory only', { imageDirs: dir, source: 'default' });
  return [dir];
}

export /** Virtual size of a disk image: the file size for raw, the header field for qcow2. */
function imageVirtualSize(path: string, format: 'raw' | 'qcow2'): number | undefined {
  try {
    if (format === 'raw') return statSync(path).size;
    const fd = openSync(path, 'r');
    try {
      const h = Buffer.alloc(32);
      if (readSync(fd, h, 0, 32, 0) !== 32 || h.readUInt32BE(0) !== 0x514649fb) return undefined;
      return Number(h.readBigUInt64BE(24));
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
}

export function checkImagePath(file: unknown, forWrite: boolean): asserts file is string {
  if (typeof file !== 'string' || !isAbsolute(file) || file.includes('\0') || file.split('/').includes('..')) {
    throw new VirtError('VIRT_ERR_INVALID_ARG', `save image path must be absolute without "..", got ${JSON.stringify(file)}`);
  }
  if (forWrite) {
    let ok = false;
    try {
      ok = statSync(dirname(file)).isDirectory();
    } catch {
      ok = false;
    }
    if (!ok) throw new VirtError('VIRT_ERR_INVALID_ARG', `directory of save image ${file} does not exist`);
  }
}

/** Every host file a definition names, with the key that names it. */
export function definitionFiles(def: DomainDefinition): { key: string; path: string; mayBeMissing: boolean }[] {
  const out: { key: string; path: string; mayBeMissing: boolean }[] = [];
  def.disks.forEach((d, i) => out.push({ key: `disks[${i}].path`, path: d.path, mayBeMissing: true }));
  if (def.kernel !== undefined) {
    out.push({ key: 'kernel.path', path: def.kernel.path, mayBeMissing: true });
    if (def.kernel.initrd !== undefined) out.push({ key: 'kernel.initrd', path: def.kernel.initrd, mayBeMissing: true });
  }
  if (def.console?.logFile !== undefined) out.push({ key: 'console.logFile', path: def.console.logFile, mayBeMissing: true });
  return out;
}

function denied(key: string, path: string, why: string): VirtError {
  return new VirtError('VIRT_ERR_OPERATION_DENIED', `${key} ${JSON.stringify(path)} ${why}`);
}

/** The real path of a file, or of its directory plus its name when the file does not exist yet. */
function realOrParent(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    try {
      return join(realpathSync(dirname(path)), basename(path));
    } catch {
      return undefined;
    }
  }
}

/**
 * QEMU opens every file a definition names (as root unless qemu-user): refuse device nodes,
 * FIFOs, sockets and directories always, and, when image directories are
 * configured, anything that does not resolve inside one of them.
 */
export function checkDefinitionPaths(def: DomainDefinition, imageDirs: readonly string[]): void {
  const roots = imageDirs.map((d) => realOrParent(d) ?? d);
  for (const f of definitionFiles(def)) {
    let st;
    try {
      st = statSync(f.path);
    } catch {
      st = undefined;
    }
    if (st !== undefined && !st.isFile()) {
      throw denied(f.key, f.path, st.isBlockDevice() || st.isCharacterDevice() ? 'is a device node; only regular image files may be named' : 'is not a regular file');
    }
    if (roots.length === 0) continue;
    // A path whose directory does not exist yet is judged as written (it is absolute, without ".."); start checks again.
    const real = realOrParent(f.path) ?? f.path;
    if (!roots.some((r) => real === r || real.startsWith(r.endsWith(sep) ? r : r + sep))) {
      throw denied(f.key, f.path, `is not inside the configured image directories (${imageDirs.join(', ')})${real !== f.path ? `; it resolves to ${real}` : ''}`);
    }
  }
}
