/**
 * xen:/// — opens the Xen sub-drivers that fit the privilege and the
 * connection mode, then serves them as one driver (unified.ts).
 *  - root:     hypervisor (virt-proxy --stdio child) + Xend + XenStore;
 *  - non-root: proxy (virt-proxy socket) + XenStore read-only + Xend
 *              (read-only) when its socket answers.
 * A read-only connection, or any non-root one, opens nothing that can
 * write: Xend without its write operations, XenStore refusing writes.
 */
import { VirtError, isVirtError, toVirtError } from '../../virt/errors.ts';
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
import { createXendSubDriver, type XendSubDriver } from './xend-driver.ts';
import { createLibxlSubDriver, XlConfigStore, type ActiveLookup } from './libxl-driver.ts';
import { channelXl, localXl, type XlRunner } from './xl.ts';
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

  // Each backend is opened now; one that is not there yet is retried (with backoff) on later calls.
  const attempt = async <T,>(slot: string, connect: () => Promise<T>, quiet = false): Promise<{ first?: T; err?: unknown }> => {
    try {
      return { first: await connect() };
    } catch (err) {
      if (quiet) log.info(`${slot} not reachable; retried on later calls`, { err: toVirtError(err).message });
      else note(slot, err);
      return { err };
    }
  };

  const xsConnect = (): Promise<XenStoreClient> => XenStoreClient.connect({ socketPath: resolveXenStoreSocket(s.xenstoreSocket), readOnly: !writable, timeoutMs: s.timeoutMs, logger: log });
  const xsFirst = await attempt('xenstore', xsConnect);
  const xsConn = new Reconnecting(xsFirst.first, xsConnect, log, 'xenstore', { firstError: xsFirst.err, initialMs: s.retryMs });
  const xs: XenStoreSubDriver = createXenStoreSubDriver(xsConn, !writable);

  const xendConnect = (): Promise<XendClient> => XendClient.open({ address: s.xendAddress, timeoutMs: s.timeoutMs, opTimeoutMs: s.xendOpTimeoutMs, maxResponseBytes: s.xendMaxResponseBytes, logger: log });
  // Xend left Xen in 4.5; non-root simply goes without it until it answers.
  const xendFirst = await attempt('xend', xendConnect, !root);
  const xendConn = new Reconnecting(xendFirst.first, xendConnect, log, 'xend', { firstError: xendFirst.err, initialMs: s.retryMs });
  const xend: XendSubDriver = createXendSubDriver({ conn: xendConn, writable, graceMs: s.timeoutMs });

  // Names and devices for the hypervisor readings: XenStore first, then Xend.
  const identify: Identify = async (readings, signal) => {
    const errors: ReadError[] = [];
    {
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
    {
      try {
        const bulk = await (xend.allDomainStats as NonNullable<XendSubDriver['allDomainStats']>)({ groups: ['state'], signal });
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

  const hypSlot = root ? 'hypervisor' : 'proxy';
  const args = ['--sysfs-root', s.sysfsRoot, '--proc-net-dev', s.procNetDev];
  const hypConnect = async (): Promise<VirtProxyClient> => {
    const c = root
      ? await VirtProxyClient.spawnStdio({ binary: s.proxyBinary, xenctrl: s.xenctrl, args, logger: log, timeoutMs: s.proxyTimeoutMs })
      : await VirtProxyClient.connect({ socketPath: s.proxySocket, logger: log, timeoutMs: s.proxyTimeoutMs });
    try {
      // Fail at open, not at the first scrape, when Xen (or the stub) is not there.
      await c.version();
    } catch (err) {
      await c.close().catch(() => undefined);
      throw err;
    }
    return c;
  };
  const hypFirst = await attempt(hypSlot, hypConnect);
  const hypConn = new Reconnecting<VirtProxyClient>(hypFirst.first, hypConnect, log, root ? 'virt-proxy child' : 'virt-proxy socket', { firstError: hypFirst.err, initialMs: s.retryMs });
  const hyp: XenSubDriver = createHypervisorSubDriver({ slot: hypSlot, conn: hypConn, identify });

  // The write path: Xend when it answers (Xen <= 4.4), else xl (Xen >= 4.5) when it works.
  let libxl: XenSubDriver | undefined;
  let xlConn: Reconnecting<XlRunner> | undefined;
  if (xendFirst.first === undefined) {
    const xlConnect = async (): Promise<XlRunner> => {
      // xl runs are slow (each one loads libxl and talks to xenstored): at least 30 s each.
      const xlMs = Math.max(s.timeoutMs, 30_000);
      const r = s.xlChannel !== '' ? await channelXl(s.xlChannel, xlMs) : localXl(s.xlBinary, xlMs);
      try {
        // Read-only probe: xl reaches the hypervisor and its libraries load.
        const info = await r.run(['info']);
        if (info.code !== 0 || !/xen_major/.test(info.stdout)) throw new VirtError('VIRT_ERR_NO_CONNECT', `${r.describe} info failed (exit ${info.code}): ${info.stderr.trim().slice(0, 200)}`, { driver: 'xen/libxl' });
      } catch (err) {
        await r.close();
        throw err;
      }
      return r;
    };
    const xlFirst = await attempt('libxl', xlConnect, true);
    // A configured xl channel names the toolstack outright: when its first probe fails (dom0 busy,
    // the channel not up yet) it is retried with backoff like any other sub-driver, not given up.
    if (xlFirst.first !== undefined || s.xlChannel !== '') {
      xlConn = new Reconnecting(xlFirst.first, xlConnect, log, 'xl', { firstError: xlFirst.err, initialMs: s.retryMs });
      const activeNames = (): Promise<Set<string>> => xs.names();
      const active: ActiveLookup = async (key) => {
        try {
          const i = await (hyp.domainInfo as NonNullable<XenSubDriver['domainInfo']>)(key);
          return { name: i.name, uuid: i.uuid, id: i.id, state: i.state };
        } catch (err) {
          if (isVirtError(err, 'VIRT_ERR_NO_DOMAIN')) return undefined;
          throw err;
        }
      };
      libxl = createLibxlSubDriver({
        conn: xlConn,
        store: new XlConfigStore(s.libxlConfigDir),
        // The xl channel is a root endpoint someone set up for this exporter: it carries writes for any exporter user.
        writable: (root || s.xlChannel !== '') && !ctx.readOnly,
        active,
        activeNames,
        graceMs: s.timeoutMs,
        opTimeoutMs: s.xendOpTimeoutMs,
      });
    }
  }

  const opened = [hypFirst, xendFirst, xsFirst].filter((x) => x.first !== undefined).length + (libxl !== undefined ? 1 : 0);
  if (opened === 0) {
    await Promise.all([hypConn.close(), xendConn.close(), xsConn.close()].map((p) => p.catch(() => undefined)));
    throw new VirtError('VIRT_ERR_NO_CONNECT', `cannot open ${uri.text}: no Xen backend reachable (${failures.join('; ')})`, { driver: 'xen' });
  }
  if (libxl !== undefined) await xendConn.close();
  const subs: XenSubDriver[] = libxl !== undefined ? [hyp, libxl, xs] : [hyp, xend, xs];
  const writePath = libxl !== undefined ? (libxl.canWrite ? 'libxl' : 'none') : writable ? 'xend' : 'none';
  log.info('xen driver open', {
    subs: subs.map((x) => x.slot).join(','),
    connected: [hypFirst.first !== undefined ? hypSlot : '', xendFirst.first !== undefined ? 'xend' : '', libxl !== undefined ? 'libxl' : '', xsFirst.first !== undefined ? 'xenstore' : ''].filter((x) => x !== '').join(','),
    privileged: root,
    read_only: ctx.readOnly,
    write_path: writePath,
  });
  const denyReason = ctx.readOnly ? 'the connection is read-only' : !root && libxl === undefined ? 'an unprivileged (non-root) Xen connection never changes domains' : 'no writable Xen toolstack (Xend or xl) is open';
  return createUnifiedDriver(subs, { logger: log, denyReason, inactiveTimeoutMs: s.inactiveTimeoutMs });
}
