import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { dirname, isAbsolute } from 'node:path';
import { VirtError } from '../virt/errors.ts';

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
