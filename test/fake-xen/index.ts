/**
 * Starts the whole fake Xen host under one directory: XenStore socket, Xend
 * socket (and TCP if asked), state file and device-counter files for the stub
 * libxenctrl/virt-proxy. Not shipped; for tests and scripts/fake-xen.ts.
 */
import { join } from 'node:path';
import { FakeXenHost } from './host.ts';
import { startXenStoreServer, type XenStoreServer } from './xenstore-server.ts';
import { startXendServer, type XendServer } from './xend-server.ts';

export interface FakeXen {
  host: FakeXenHost;
  xenstore: XenStoreServer;
  xend: XendServer;
  paths: {
    dir: string;
    xenstoreSocket: string;
    xendSocket: string;
    /** VIRT_FAKE_XEN_STATE for the stub libxenctrl. */
    stateFile: string;
    sysfsRoot: string;
    procNetDev: string;
  };
  stop(): Promise<void>;
}

export async function startFakeXen(opts: { dir: string; tcp?: boolean; autoTickMs?: number }): Promise<FakeXen> {
  const host = new FakeXenHost({ dir: opts.dir, autoTickMs: opts.autoTickMs ?? 0 });
  host.changed();
  await host.flushed();
  const xenstoreSocket = join(opts.dir, 'xenstored.sock');
  const xendSocket = join(opts.dir, 'xend.sock');
  const xenstore = await startXenStoreServer(host.store, xenstoreSocket);
  let xend: XendServer;
  try {
    xend = await startXendServer(host, { socketPath: xendSocket, tcp: opts.tcp });
  } catch (err) {
    await xenstore.close();
    throw err;
  }
  return {
    host,
    xenstore,
    xend,
    paths: { dir: opts.dir, xenstoreSocket, xendSocket, stateFile: host.statePath, sysfsRoot: host.sysfsRoot, procNetDev: host.procNetDev },
    stop: async () => {
      await host.stop();
      await xend.close();
      await xenstore.close();
    },
  };
}
