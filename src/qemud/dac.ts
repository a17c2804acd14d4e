/**
 * Running QEMU as an unprivileged user, the way libvirt's DAC driver does:
 * the files a domain needs (disks, kernel, initrd, console log) are handed to
 * that user while the domain runs, and their owner is put back when it
 * stops. What was changed is recorded in the domain's runtime record, so a
 * restart of virt-qemud or a crashed QEMU still gets it restored.
 */
import { chownSync, readFileSync, statSync } from 'node:fs';
import type { Logger } from '../util/logger.ts';
import { VirtError } from '../virt/errors.ts';
import type { QemudMode } from '../qemud-shared/paths.ts';

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

/**
 * The users a system virt-qemud runs QEMU as when --qemu-user is not given,
 * first found wins: the one our Debian package creates, then libvirt's.
 */
export const DEFAULT_QEMU_USERS = ['virt-qemu', 'libvirt-qemu'] as const;

/** Looks a user up in the passwd file; undefined when it does not exist. */
export function lookupUser(name: string, passwdFile = '/etc/passwd'): QemuUser | undefined {
  let text: string;
  try {
    text = readFileSync(passwdFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined && /^\d+$/.test(uid) && /^\d+$/.test(gid)) return { name, uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

/** Looks a user up in /etc/passwd; VIRT_ERR_CONFIG when it does not exist. */
export function resolveQemuUser(name: string, passwdFile = '/etc/passwd'): QemuUser {
  const u = lookupUser(name, passwdFile);
  if (u !== undefined) return u;
  throw new VirtError('VIRT_ERR_CONFIG', `qemu-user ${JSON.stringify(name)} does not exist; create it (for example: useradd --system --no-create-home --shell /usr/sbin/nologin ${name}) or leave qemu-user empty`);
}

/**
 * The user QEMU runs as; undefined: virt-qemud's own.
 * - `--qemu-user NAME`: that user (VIRT_ERR_CONFIG when it does not exist);
 *   naming virt-qemud's own user (for example root) keeps QEMU as that user.
 * - not given, qemu:///system run as root: the first of DEFAULT_QEMU_USERS
 *   that exists; when none does, root, with a warning at every start.
 * - not given, qemu:///session: the session's own user, as libvirt's.
 */
export function chooseQemuUser(mode: QemudMode, configured: string | undefined, logger: Logger, passwdFile = '/etc/passwd'): QemuUser | undefined {
  const euid = process.geteuid?.() ?? 0;
  if (configured !== undefined && configured !== '') {
    const u = resolveQemuUser(configured, passwdFile);
    if (u.uid === euid) {
      logger.info('QEMU runs as virt-qemud\'s own user (--qemu-user names it)', { qemuUser: u.name, uid: u.uid });
      return undefined;
    }
    logger.info('QEMU runs as an unprivileged user', { qemuUser: u.name, uid: u.uid, gid: u.gid, source: 'qemu-user' });
    return u;
  }
  if (mode === 'session' || euid !== 0) return undefined;
  for (const name of DEFAULT_QEMU_USERS) {
    const u = lookupUser(name, passwdFile);
    if (u !== undefined && u.uid !== 0) {
      logger.info('QEMU runs as an unprivileged user', { qemuUser: u.name, uid: u.uid, gid: u.gid, source: 'default' });
      return u;
    }
  }
  logger.warn(
    `SECURITY: QEMU runs as root: no unprivileged QEMU user exists (looked for ${DEFAULT_QEMU_USERS.join(', ')}); a compromised QEMU is root on the host. Create one (the Debian package creates virt-qemu: adduser --system --ingroup kvm --no-create-home virt-qemu) or set --qemu-user; --qemu-user root silences this`,
    { qemuUser: 'root', looked: DEFAULT_QEMU_USERS.join(',') },
  );
  return undefined;
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
