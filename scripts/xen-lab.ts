// npm run xen-lab: boots the Xen lab (Debian's Xen 4.17 under QEMU TCG, PV
// dom0, optionally PV domUs), prints what to point the exporter at, and keeps
// it up until Ctrl-C (then tears it down). --domus N starts N tiny domUs;
// --check boots, prints xl list and virt-proxy's probe, and exits.
import { bootXenLab } from '../test/fixtures/xen-lab/lab.ts';

const argv = process.argv.slice(2);
const n = Number(argv[argv.indexOf('--domus') + 1] ?? 0);
const domus = argv.includes('--domus') && Number.isInteger(n) ? n : 0;
const check = argv.includes('--check');
const out = (s: string): void => void process.stdout.write(s + '\n');

const t0 = Date.now();
out('xen-lab: building (cached under .cache/xen-lab/) and booting Xen 4.17 under QEMU TCG ...');
const lab = await bootXenLab();
out(`xen-lab: dom0 up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
let stopping = false;
const stop = async (code: number): Promise<never> => {
  if (!stopping) {
    stopping = true;
    await lab.stop();
  }
  process.exit(code);
};
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
try {
  for (let i = 1; i <= domus; i++) {
    const t = Date.now();
    const id = await lab.createDomU(`domu${i}`, { disk: `/dev/ram${i - 1}`, nic: true });
    out(`xen-lab: domu${i} is domain ${id} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  }
  out(await lab.ok('xl list'));
  out(await lab.ok('virt-proxy --probe 2>&1'));
  const flags = Object.entries(lab.settings).map(([k, v]) => `--${k}=${v}`).join(' ');
  out('Point the exporter (non-root view: virt-proxy socket + XenStore, relayed into dom0) at it:');
  out(`  bin/virt-exporter --connect xen:/// ${flags}`);
  out(`  bin/virtctl --connect xen:/// ${flags} domstats`);
  out(`dom0 shell commands: the control agent on ${lab.sockets.agent} (see test/fixtures/xen-lab/lab.ts)`);
  if (check) await stop(0);
  out('Ctrl-C tears the lab down.');
} catch (err) {
  process.stderr.write(`xen-lab: ${String(err)}\n`);
  await stop(1);
}
