/**
 * Running QEMU as an unprivileged user, the way libvirt's DAC driver does:
 * the files a domain needs (disks, kernel, initrd, console log) are handed to
 * that user while the domain runs, and their owner is put back when it
 * stops. What was changed is recorded in the domain's runtime record, so a
 * restart of virt-qemud or a crashed QEMU still gets it restored.
 */
import { chownSync, readFileSync, statSync } from 'node:fs';
import { VirtError } from '../virt/errors.ts';

export interface QemuUser {
  name: string;
  uid: number;
  gid: number;
}

export interface Label {
  path: string;
  uid: number;
  gid: number;
}

/** Looks a user up in /etc/passwd; VIRT_ERR_CONFIG when it does not exist. */
export function resolveQemuUser(name: string): QemuUser {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined) return { name, uid: Number(uid), gid: Number(gid) };
  }
  throw new VirtError('VIRT_ERR_CONFIG', `qemu-user ${JSON.stringify(name)} does not exist; create it (for example: useradd --system --no-create-home --shell /usr/sbin/nologin ${name}) or leave qemu-user empty`);
}

/** Hands each existing file to the QEMU user, recording its owner; undoes everything on failure. */
export function labelFiles(paths: readonly string[], user: QemuUser): Label[] {
  const done: Label[] = [];
  for (const path of [...new Set(paths)]) {
    let st;
    try {
      st = statSync(path);
    } catch {
      continue;
    }
    if (!st.isFile()) continue;
    try {
      chownSync(path, user.uid, user.gid);
    } catch (err) {
      restoreLabels(done);
      throw new VirtError('VIRT_ERR_OPERATION_FAILED', `cannot give ${path} to qemu-user ${user.name}: ${(err as Error).message}`, { cause: err });
    }
    done.push({ path, uid: st.uid, gid: st.gid });
  }
  return done;
}

/** Puts the recorded owners back; a file that is gone is skipped. */
export function restoreLabels(labels: readonly Label[]): void {
  for (const l of labels) {
    try {
      chownSync(l.path, l.uid, l.gid);
    } catch {
      // removed meanwhile
    }
  }
}
