/**
 * xen:/// — opens the Xen sub-drivers that fit the privilege and the
 * connection mode, then serves them as one driver (unified.ts).
 *  - root:     hypervisor (virt-proxy --stdio child) + Xend + XenStore;
 *  - non-root: proxy (virt-proxy socket) + XenStore read-only + Xend
 *              (read-only) when its socket answers.
 * A read-only connection, or any non-root one, opens nothing that can
 * write: Xend without its write operations, XenStore refusing writes.
 */
import { VirtError, toVirtError } from '../../virt/errors.ts';
import type { VirtUri } from '../../virt/uri.ts';
import type { Driver } from '../driver.ts';
import type { OpenContext } from '../driver.ts';
import type { ReadError } from '../types.ts';
import { createHypervisorSubDriver, type DomainIdentity, type Identify } from './hypervisor-driver.ts';
import { VirtProxyClient } from './proxy-client.ts';
import { isPrivileged, readXenSettings } from './settings.ts';
import type { XenSubDriver } from './subdriver.ts';
import { createUnifiedDriver } from './unified.ts';
import { Reconnecting } from './reconnecting.ts';
import { XendClient } from './xend.ts';
import { createXendSubDriver } from './xend-driver.ts';
import { createXenStoreSubDriver, type XenStoreSubDriver } from './xenstore-driver.ts';
import { resolveXenStoreSocket, XenStoreClient } from './xenstore.ts';

export async function openXenDriver(uri: VirtUri, ctx: OpenContext): Promise<Driver> {
  const s = readXenSettings(ctx.settings);
  const root = isPrivileged(s.privileged);
  const writable = root && !ctx.readOnly;
  const log = ctx.logger.child({ driver: 'xen' });
  const failures: string[] = [];
  const note = (slot: string, err: unknown): void => {
    const e = toVirtError(err, 'VIRT_ERR_NO_CONNECT');
    failures.push(`${slot}: ${e.message}`);
    log.warn('xen sub-driver not opened', { sub: slot, code: e.code, err: e.message });
  };

  let xs: XenStoreSubDriver | undefined;
  try {
    const connect = (): Promise<XenStoreClient> => XenStoreClient.connect({ socketPath: resolveXenStoreSocket(s.xenstoreSocket), readOnly: !writable, timeoutMs: s.timeoutMs, logger: log });
    xs = createXenStoreSubDriver(new Reconnecting(await connect(), connect, log, 'xenstore'), !writable);
  } catch (err) {
    note('xenstore', err);
  }

  let xend: XenSubDriver | undefined;
  try {
    const client = await XendClient.open({ address: s.xendAddress, timeoutMs: s.timeoutMs, opTimeoutMs: s.xendOpTimeoutMs, maxResponseBytes: s.xendMaxResponseBytes, logger: log });
    xend = createXendSubDriver({ client, writable, graceMs: s.timeoutMs });
  } catch (err) {
    // Xend left Xen in 4.5; non-root simply goes without it.
    if (root) note('xend', err);
    else log.info('xend not reachable; continuing without it', { err: toVirtError(err).message });
  }

  // Names and devices for the hypervisor readings: XenStore first, then Xend.
  const identify: Identify = async (readings, signal) => {
    const errors: ReadError[] = [];
    if (xs !== undefined) {
      try {
        const found = await xs.identities(readings.map((r) => r.domid), { signal });
        const ids = new Map<number, DomainIdentity>();
        for (const [id, i] of found) ids.set(id, { name: i.name, memoryTargetBytes: i.memoryTargetBytes, vbdNames: i.vbdNames, vbdPaths: i.vbdPaths, vifMacs: i.vifMacs });
        for (const r of readings) if (!ids.has(r.domid)) errors.push({ domain: String(r.domid), code: 'VIRT_ERR_NO_DOMAIN', message: `domain ${r.domid} has no name in XenStore` });
        return { ids, errors };
      } catch (err) {
        const e = toVirtError(err);
        if (e.code === 'VIRT_ERR_OPERATION_TIMEOUT') throw e;
        errors.push({ code: e.code, message: `names from XenStore: ${e.message}` });
      }
    }
    if (xend?.allDomainStats !== undefined) {
      try {
        const bulk = await xend.allDomainStats({ groups: ['state'], signal });
        const ids = new Map<number, DomainIdentity>();
        for (const d of bulk.domains) if (d.info.id !== null) ids.set(d.info.id, { name: d.info.name });
        return { ids, errors };
      } catch (err) {
        const e = toVirtError(err);
        if (e.code === 'VIRT_ERR_OPERATION_TIMEOUT') throw e;
        errors.push({ code: e.code, message: `names from Xend: ${e.message}` });
      }
    }
    return { ids: new Map(), errors };
  };

  let hyp: XenSubDriver | undefined;
  try {
    const args = ['--sysfs-root', s.sysfsRoot, '--proc-net-dev', s.procNetDev];
    const connect = (): Promise<VirtProxyClient> =>
      root
        ? VirtProxyClient.spawnStdio({ binary: s.proxyBinary, xenctrl: s.xenctrl, args, logger: log, timeoutMs: s.proxyTimeoutMs })
        : VirtProxyClient.connect({ socketPath: s.proxySocket, logger: log, timeoutMs: s.proxyTimeoutMs });
    const conn = new Reconnecting<VirtProxyClient>(await connect(), connect, log, root ? 'virt-proxy child' : 'virt-proxy socket');
    hyp = createHypervisorSubDriver({ slot: root ? 'hypervisor' : 'proxy', conn, identify });
    // Fail at open, not at the first scrape, when Xen (or the stub) is not there.
    await hyp.version?.();
  } catch (err) {
    note(root ? 'hypervisor' : 'proxy', err);
    await hyp?.close?.().catch(() => undefined);
    hyp = undefined;
  }

  const subs = [hyp, xend, xs].filter((x): x is XenSubDriver => x !== undefined);
  if (subs.length === 0) {
    throw new VirtError('VIRT_ERR_NO_CONNECT', `cannot open ${uri.text}: no Xen backend reachable (${failures.join('; ')})`, { driver: 'xen' });
  }
  log.info('xen driver open', { subs: subs.map((x) => x.slot).join(','), privileged: root, read_only: ctx.readOnly });
  const denyReason = ctx.readOnly ? 'the connection is read-only' : !root ? 'an unprivileged (non-root) Xen connection never changes domains' : 'no writable Xen backend (Xend) is open';
  return createUnifiedDriver(subs, { logger: log, denyReason });
}
