/** Builds the QEMU command line for a definition. */
import { constants, accessSync } from 'node:fs';
import { domainNetns, type DomainDefinition } from './definition.ts';

export interface LaunchSpec {
  qmpSocket: string;
  pidFile: string;
  consoleLog: string;
  accel: 'kvm' | 'tcg';
  /** Restore: start waiting for an incoming migration (-incoming defer). */
  incoming?: boolean;
  balloonStatsIntervalSeconds: number;
  /** Emulator binary; default qemu-system-<arch> from PATH. */
  emulator?: string;
}

export interface Command {
  file: string;
  args: string[];
}

/** KVM is usable when /dev/kvm can be opened for reading and writing. */
export function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

export const BALLOON_QOM_PATH = '/machine/peripheral/balloon0';

/** Node name of a disk's format layer; query-blockstats reports it even with -blockdev. */
export function diskNodeName(target: string): string {
  return `fmt-${target}`;
}

function opt(s: string): string {
  // QEMU option values double a literal comma; definitions already refuse commas in paths.
  return s.replaceAll(',', ',,');
}

export function buildCommand(def: DomainDefinition, spec: LaunchSpec): Command {
  const emulator = spec.emulator !== undefined && spec.emulator !== '' ? spec.emulator : `qemu-system-${def.arch}`;
  const a: string[] = [
    '-name', `guest=${opt(def.name)},debug-threads=on`,
    '-uuid', def.uuid,
    '-machine', `${def.machine},accel=${spec.accel}`,
    '-m', `${def.memoryMiB}M`,
    '-smp', String(def.vcpus),
    '-nodefaults', '-no-user-config',
    '-display', 'none',
    '-chardev', `socket,id=qmp,path=${opt(spec.qmpSocket)},server=on,wait=off`,
    '-mon', 'chardev=qmp,mode=control',
    // Guest poweroff leaves QEMU alive in "shutdown": virt-qemud sees it and quits it.
    '-no-shutdown',
    // Not -daemonize: the sandbox below forbids the fork and setsid it needs; virt-qemud detaches QEMU itself.
    '-pidfile', spec.pidFile,
    // As libvirt: no obsolete syscalls, no setuid/setgid, no fork/exec, no scheduler/affinity changes.
    '-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
    '-chardev', `file,id=serial0,path=${opt(spec.consoleLog)},append=on`,
    '-serial', 'chardev:serial0',
  ];
  if (def.kernel !== undefined) {
    a.push('-kernel', def.kernel.path);
    if (def.kernel.initrd !== undefined) a.push('-initrd', def.kernel.initrd);
    if (def.kernel.cmdline !== undefined) a.push('-append', def.kernel.cmdline);
  }
  for (const d of def.disks) {
    const file = `file-${d.target}`;
    const node = diskNodeName(d.target);
    const ro = d.readonly ? 'on' : 'off';
    a.push('-blockdev', `driver=file,filename=${opt(d.path)},node-name=${file},read-only=${ro},cache.direct=off`);
    a.push('-blockdev', `driver=${d.format},file=${file},node-name=${node},read-only=${ro}`);
    if (d.bus === 'virtio') {
      a.push('-device', `virtio-blk-pci,drive=${node},id=${d.target}`);
    } else {
      const idx = d.target.charCodeAt(2) - 97;
      a.push('-device', `ide-hd,drive=${node},id=${d.target},bus=ide.${idx >> 1},unit=${idx & 1}`);
    }
  }
  def.nics.forEach((n, i) => {
    const id = `net${i}`;
    if (n.type === 'user') a.push('-netdev', `user,id=${id}`);
    else a.push('-netdev', `tap,id=${id},ifname=${n.ifname ?? ''},script=no,downscript=no`);
    a.push('-device', `${n.model},netdev=${id},mac=${n.mac},id=nic${i}`);
  });
  if (def.balloon.enabled) {
    const iv = def.balloon.statsIntervalSeconds ?? spec.balloonStatsIntervalSeconds;
    a.push('-device', `virtio-balloon-pci,id=balloon0,guest-stats-polling-interval=${iv}`);
  }
  if (spec.incoming === true) a.push('-incoming', 'defer');
  const ns = domainNetns(def);
  if (ns !== undefined) return { file: 'ip', args: ['netns', 'exec', ns, emulator, ...a] };
  return { file: emulator, args: a };
}
