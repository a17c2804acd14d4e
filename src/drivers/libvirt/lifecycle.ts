/**
 * The lifecycle operations of the admin endpoint and virtctl over libvirt:
 * each is one libvirt procedure after a lookup (by UUID, id or name), on the
 * read-write connection; libvirt's refusals come back typed (LibvirtError
 * keeps libvirt's own code).
 */
import { VirtError } from '../../virt/errors.ts';
import type { Logger } from '../../util/logger.ts';
import type { Driver } from '../driver.ts';
import { DOMAIN_STATES, type ShutdownOptions } from '../types.ts';
import { uuidOfXml } from './domxml.ts';
import { Proc, readDomain, STRING_MAX, writeDomain, type WireDomain } from './protocol.ts';
import { toRef } from './readings.ts';
import type { ReadCall } from './bulk.ts';
import type { XdrReader, XdrWriter } from './xdr.ts';

export type LifecycleOps = Pick<Driver, 'define' | 'undefine' | 'start' | 'shutdown' | 'reboot' | 'destroy' | 'suspend' | 'resume' | 'save' | 'restore'>;

export interface LifecycleDeps {
  lookup: (key: string) => Promise<WireDomain>;
  read: ReadCall;
  write: <T>(proc: number, payload: ((w: XdrWriter) => void) | undefined, decode: (r: XdrReader) => T) => Promise<T>;
  graceMs: number;
  log: Logger;
}

export function lifecycleOps(deps: LifecycleDeps): LifecycleOps {
  const { lookup, read, write, graceMs, log } = deps;
  const none = (): undefined => undefined;
  const domArg = (d: WireDomain) => (w: XdrWriter): void => writeDomain(w, d);
  const stateOf = (d: WireDomain): Promise<number> =>
    read(Proc.DOMAIN_GET_STATE, (w) => {
      writeDomain(w, d);
      w.uint(0);
    }, (r) => {
      const st = r.int();
      r.int();
      return st;
    });

  return {
  define: async (definition) => {
    const xml = typeof definition === 'string' ? definition : typeof definition === 'object' && definition !== null && typeof (definition as { xml?: unknown }).xml === 'string' ? (definition as { xml: string }).xml : undefined;
    if (xml === undefined || !xml.trimStart().startsWith('<')) {
      throw new VirtError('VIRT_ERR_XML_ERROR', 'the libvirt driver defines domains from libvirt domain XML: pass {"xml": "<domain ...>...</domain>"}');
    }
    return toRef(await write(Proc.DOMAIN_DEFINE_XML, (w) => w.string(xml, STRING_MAX), readDomain));
  },
  undefine: async (key) => {
    await write(Proc.DOMAIN_UNDEFINE, domArg(await lookup(key)), none);
  },
  start: async (key) => {
    await write(Proc.DOMAIN_CREATE, domArg(await lookup(key)), none);
  },
  shutdown: async (key, opts?: ShutdownOptions) => {
    const d = await lookup(key);
    await write(Proc.DOMAIN_SHUTDOWN, domArg(d), none);
    const until = Date.now() + graceMs;
    for (;;) {
      const st = await stateOf(d).catch((err: unknown) => {
        if (err instanceof VirtError && err.code === 'VIRT_ERR_NO_DOMAIN') return 5; // a transient domain is gone once off
        throw err;
      });
      if (DOMAIN_STATES[st] === 'shutoff') return;
      if (Date.now() >= until) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    if (opts?.force === true) {
      log.warn('guest ignored the ACPI shutdown request; destroying it', { domain: d.name, graceSeconds: graceMs / 1000 });
      await write(Proc.DOMAIN_DESTROY, domArg(d), none);
      return;
    }
    throw new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `domain ${d.name} did not stop within ${graceMs / 1000} s of the ACPI shutdown request; the guest may ignore ACPI (use force to destroy it)`, { domain: d.name, driver: 'libvirt' });
  },
  reboot: async (key) => {
    const d = await lookup(key);
    await write(Proc.DOMAIN_REBOOT, (w) => {
      writeDomain(w, d);
      w.uint(0);
    }, none);
  },
  destroy: async (key) => {
    await write(Proc.DOMAIN_DESTROY, domArg(await lookup(key)), none);
  },
  suspend: async (key) => {
    await write(Proc.DOMAIN_SUSPEND, domArg(await lookup(key)), none);
  },
  resume: async (key) => {
    await write(Proc.DOMAIN_RESUME, domArg(await lookup(key)), none);
  },
  save: async (key, file) => {
    const d = await lookup(key);
    await write(Proc.DOMAIN_SAVE, (w) => {
      writeDomain(w, d);
      w.string(file, STRING_MAX);
    }, none);
  },
  restore: async (file) => {
    const xml = await read(Proc.DOMAIN_SAVE_IMAGE_GET_XML_DESC, (w) => w.string(file, STRING_MAX).uint(0), (r) => r.string(STRING_MAX));
    await write(Proc.DOMAIN_RESTORE, (w) => w.string(file, STRING_MAX), none);
    const uuid = uuidOfXml(xml);
    if (uuid === undefined) throw new VirtError('VIRT_ERR_OPERATION_FAILED', `restored ${file}, but its XML names no UUID to report`);
    return toRef(await lookup(uuid));
  },
  };
}
