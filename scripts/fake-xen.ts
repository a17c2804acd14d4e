/**
 * Starts the fake Xen host (test/fake-xen) under DIR and prints the flags
 * that point virt-exporter and virtctl at it:
 *   node scripts/fake-xen.ts DIR [--tcp] [--no-proxy-daemon]
 * Runs until interrupted; counters advance with real time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { access, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { startFakeXen } from '../test/fake-xen/index.ts';

const ROOT = resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const dirArg = args.find((a) => !a.startsWith('--'));
if (dirArg === undefined || args.includes('--help')) {
  console.error('usage: node scripts/fake-xen.ts DIR [--tcp] [--no-proxy-daemon]');
  process.exit(dirArg === undefined ? 2 : 0);
}
const dir = resolve(dirArg);
await mkdir(dir, { recursive: true });

const proxyBin = join(ROOT, 'native/build/virt-proxy');
const stubLib = join(ROOT, 'native/build/libxenctrl-stub.so');
let haveNative = true;
try {
  await access(proxyBin);
  await access(stubLib);
} catch {
  haveNative = false;
  console.error(`note: ${proxyBin} or ${stubLib} is missing; run \`make -C native all stub\` for the hypervisor/proxy path.`);
}

const fx = await startFakeXen({ dir, tcp: args.includes('--tcp'), autoTickMs: 1000 });
const proxySocket = join(dir, 'virt-proxy.sock');
let daemon: ChildProcess | undefined;
if (haveNative && !args.includes('--no-proxy-daemon')) {
  daemon = spawn(proxyBin, ['--socket', proxySocket, '--xenctrl', stubLib, '--sysfs-root', fx.paths.sysfsRoot, '--proc-net-dev', fx.paths.procNetDev], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, VIRT_FAKE_XEN_STATE: fx.paths.stateFile },
  });
}

const flags = [
  '--connect=xen:///',
  `--xen.xenstore-socket=${fx.paths.xenstoreSocket}`,
  `--xen.xend-address=${fx.paths.xendSocket}`,
  `--xen.proxy-binary=${proxyBin}`,
  `--xen.xenctrl=${stubLib}`,
  `--xen.proxy-socket=${proxySocket}`,
  `--xen.sysfs-root=${fx.paths.sysfsRoot}`,
  `--xen.proc-net-dev=${fx.paths.procNetDev}`,
];
const env = `VIRT_FAKE_XEN_STATE=${fx.paths.stateFile}`;
console.log(`fake Xen host running under ${dir}`);
console.log(`  XenStore: ${fx.paths.xenstoreSocket}   (XENSTORED_PATH=${fx.paths.xenstoreSocket} xenstore-ls /local/domain)`);
console.log(`  Xend:     ${fx.paths.xendSocket}${fx.xend.tcpPort !== undefined ? ` and http://127.0.0.1:${fx.xend.tcpPort}/` : ''}`);
console.log(`  state:    ${fx.paths.stateFile} (read by the stub libxenctrl)`);
if (daemon !== undefined) console.log(`  virt-proxy daemon: ${proxySocket}`);
console.log('');
console.log('as root (hypervisor path through virt-proxy --stdio):');
console.log(`  ${env} bin/virt-exporter ${flags.join(' ')} --xen.privileged=root`);
console.log('as a non-root user (virt-proxy socket, read-only):');
console.log(`  bin/virt-exporter ${flags.join(' ')} --xen.privileged=user`);
console.log('virtctl:');
console.log(`  ${env} bin/virtctl ${flags.join(' ')} --xen.privileged=root list --all`);
console.log('');
console.log('Ctrl-C stops it.');

let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  daemon?.kill('SIGTERM');
  await fx.stop();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
