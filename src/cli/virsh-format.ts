/**
 * virtctl's output in virsh's shapes: domstats keys and units as
 * `virsh domstats` prints them, dominfo's fields, list's columns and state
 * names, and "did you mean" suggestions for mistyped words.
 */
import type { DomainInfo, DomainState, DomainStats } from '../drivers/types.ts';

/** virDomainState numbers, as virsh domstats prints state.state. */
export const STATE_NUMBERS: Record<DomainState, number> = {
  nostate: 0, running: 1, blocked: 2, paused: 3, shutdown: 4, shutoff: 5, crashed: 6, pmsuspended: 7,
};

/** virsh's words for the states (list, dominfo, domstate). */
export const STATE_WORDS: Record<DomainState, string> = {
  nostate: 'no state', running: 'running', blocked: 'idle', paused: 'paused', shutdown: 'in shutdown', shutoff: 'shut off', crashed: 'crashed', pmsuspended: 'pmsuspended',
};

const VCPU_STATES: Record<string, number> = { offline: 0, running: 1, blocked: 2 };

const ns = (seconds: number): number => Math.round(seconds * 1e9);
const kib = (bytes: number): number => Math.floor(bytes / 1024);

/** One domain's readings as `virsh domstats` keys: times in ns, memory in KiB, bytes in bytes. */
export function virshStats(d: DomainStats): Array<[string, string | number]> {
  const rows: Array<[string, string | number]> = [
    ['state.state', STATE_NUMBERS[d.info.state]],
    ['state.reason', d.info.stateReason ?? ''],
    ['cpu.time', ns(d.info.cpuTimeSeconds)],
  ];
  if (d.cpu?.userSeconds !== undefined) rows.push(['cpu.user', ns(d.cpu.userSeconds)]);
  if (d.cpu?.systemSeconds !== undefined) rows.push(['cpu.system', ns(d.cpu.systemSeconds)]);
  const mem = d.memory;
  rows.push(['balloon.current', kib(mem?.balloonBytes ?? mem?.currentBytes ?? d.info.memoryBytes)], ['balloon.maximum', kib(mem?.maximumBytes ?? d.info.maxMemoryBytes)]);
  const g = mem?.guest;
  if (g?.swapInBytes !== undefined) rows.push(['balloon.swap_in', kib(g.swapInBytes)]);
  if (g?.swapOutBytes !== undefined) rows.push(['balloon.swap_out', kib(g.swapOutBytes)]);
  if (g?.majorFaults !== undefined) rows.push(['balloon.major_fault', g.majorFaults]);
  if (g?.minorFaults !== undefined) rows.push(['balloon.minor_fault', g.minorFaults]);
  if (g?.freeBytes !== undefined) rows.push(['balloon.unused', kib(g.freeBytes)]);
  if (g?.totalBytes !== undefined) rows.push(['balloon.available', kib(g.totalBytes)]);
  if (g?.availableBytes !== undefined) rows.push(['balloon.usable', kib(g.availableBytes)]);
  if (g?.lastUpdateSeconds !== undefined) rows.push(['balloon.last-update', Math.floor(g.lastUpdateSeconds)]);
  if (g?.diskCachesBytes !== undefined) rows.push(['balloon.disk_caches', kib(g.diskCachesBytes)]);
  if (mem?.rssBytes !== undefined) rows.push(['balloon.rss', kib(mem.rssBytes)]);
  rows.push(['vcpu.current', d.info.vcpus], ['vcpu.maximum', d.info.vcpus]);
  for (const v of d.vcpus ?? []) {
    rows.push([`vcpu.${v.id}.state`, VCPU_STATES[v.state] ?? 0]);
    if (v.timeSeconds !== undefined) rows.push([`vcpu.${v.id}.time`, ns(v.timeSeconds)]);
    if (v.delaySeconds !== undefined) rows.push([`vcpu.${v.id}.delay`, ns(v.delaySeconds)]);
  }
  const nets = d.net ?? [];
  rows.push(['net.count', nets.length]);
  nets.forEach((n, i) => {
    rows.push([`net.${i}.name`, n.interface]);
    const c = n.counters;
    if (c === null) return;
    rows.push(
      [`net.${i}.rx.bytes`, c.rxBytes], [`net.${i}.rx.pkts`, c.rxPackets], [`net.${i}.rx.errs`, c.rxErrors], [`net.${i}.rx.drop`, c.rxDrops],
      [`net.${i}.tx.bytes`, c.txBytes], [`net.${i}.tx.pkts`, c.txPackets], [`net.${i}.tx.errs`, c.txErrors], [`net.${i}.tx.drop`, c.txDrops],
    );
  });
  const blocks = d.block ?? [];
  rows.push(['block.count', blocks.length]);
  blocks.forEach((b, i) => {
    rows.push([`block.${i}.name`, b.device]);
    if (b.path !== undefined) rows.push([`block.${i}.path`, b.path]);
    rows.push([`block.${i}.rd.reqs`, b.readRequests], [`block.${i}.rd.bytes`, b.readBytes]);
    if (b.readTimeSeconds !== undefined) rows.push([`block.${i}.rd.times`, ns(b.readTimeSeconds)]);
    rows.push([`block.${i}.wr.reqs`, b.writeRequests], [`block.${i}.wr.bytes`, b.writeBytes]);
    if (b.writeTimeSeconds !== undefined) rows.push([`block.${i}.wr.times`, ns(b.writeTimeSeconds)]);
    if (b.flushRequests !== undefined) rows.push([`block.${i}.fl.reqs`, b.flushRequests]);
    if (b.flushTimeSeconds !== undefined) rows.push([`block.${i}.fl.times`, ns(b.flushTimeSeconds)]);
    if (b.errors !== undefined) rows.push([`block.${i}.errors`, b.errors]);
    if (b.allocationBytes !== undefined) rows.push([`block.${i}.allocation`, b.allocationBytes]);
    if (b.capacityBytes !== undefined) rows.push([`block.${i}.capacity`, b.capacityBytes]);
  });
  return rows;
}

/** The --friendly view: readings by device name in seconds and bytes. */
export function friendlyStats(d: DomainStats): Array<[string, string | number]> {
  const rows: Array<[string, string | number]> = [
    ['state', d.info.state],
    ['state.reason', d.info.stateReason ?? ''],
    ['cpu.time_seconds', d.info.cpuTimeSeconds],
    ['vcpu.current', d.info.vcpus],
    ['memory.maximum_bytes', d.memory?.maximumBytes ?? d.info.maxMemoryBytes],
    ['memory.current_bytes', d.memory?.currentBytes ?? d.info.memoryBytes],
  ];
  if (d.cpu?.userSeconds !== undefined) rows.push(['cpu.user_seconds', d.cpu.userSeconds]);
  if (d.cpu?.systemSeconds !== undefined) rows.push(['cpu.system_seconds', d.cpu.systemSeconds]);
  for (const v of d.vcpus ?? []) rows.push([`vcpu.${v.id}.state`, v.state], [`vcpu.${v.id}.time_seconds`, v.timeSeconds ?? '']);
  if (d.memory?.balloonBytes !== undefined) rows.push(['memory.balloon_bytes', d.memory.balloonBytes]);
  if (d.memory?.rssBytes !== undefined) rows.push(['memory.rss_bytes', d.memory.rssBytes]);
  for (const [k, v] of Object.entries(d.memory?.guest ?? {})) rows.push([`memory.guest.${k}`, v]);
  for (const b of d.block ?? []) for (const [k, v] of Object.entries(b) as Array<[string, string | number]>) if (k !== 'device') rows.push([`block.${b.device}.${k}`, v]);
  for (const n of d.net ?? []) {
    if (n.counters === null) rows.push([`net.${n.interface}.counters`, 'none']);
    else for (const [k, v] of Object.entries(n.counters) as Array<[string, number]>) rows.push([`net.${n.interface}.${k}`, v]);
  }
  return rows;
}

/** `virsh dominfo`'s fields. */
export function dominfoRows(info: DomainInfo): Array<[string, string]> {
  const yes = (b: boolean | undefined): string => (b === undefined ? 'unknown' : b ? 'yes' : 'no');
  return [
    ['Id', String(info.id ?? '-')],
    ['Name', info.name],
    ['UUID', info.uuid],
    ['OS Type', info.osType ?? ''],
    ['State', STATE_WORDS[info.state]],
    ['CPU(s)', String(info.vcpus)],
    ...(info.state === 'shutoff' ? [] : ([['CPU time', `${info.cpuTimeSeconds.toFixed(1)}s`]] as Array<[string, string]>)),
    ['Max memory', `${kib(info.maxMemoryBytes)} KiB`],
    ['Used memory', `${kib(info.memoryBytes)} KiB`],
    ['Persistent', yes(info.persistent)],
    ['Autostart', info.autostart === undefined ? 'unknown' : info.autostart ? 'enable' : 'disable'],
    ['Managed save', yes(info.managedSave)],
  ];
}

export interface ListRow {
  id: number | null;
  name: string;
  state: DomainState;
}

/** `virsh list`: running domains by id, then the others by name; the Name column fits the longest name. */
export function listTable(rows: readonly ListRow[]): string {
  const sorted = [...rows].sort((a, b) => (a.id ?? Infinity) - (b.id ?? Infinity) || a.name.localeCompare(b.name));
  const idW = Math.max(2, ...sorted.map((r) => String(r.id ?? '-').length));
  const nameW = Math.max(4, ...sorted.map((r) => r.name.length));
  const line = (id: string, name: string, state: string): string => ` ${id.padEnd(idW)}   ${name.padEnd(nameW)}   ${state}`.trimEnd();
  const head = line('Id', 'Name', 'State');
  const out = [head, '-'.repeat(head.length + 3)];
  for (const r of sorted) out.push(line(String(r.id ?? '-'), r.name, STATE_WORDS[r.state]));
  return out.join('\n') + '\n';
}

function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] ?? 0;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] ?? 0;
      prev[j] = Math.min(up + 1, (prev[j - 1] ?? 0) + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length] ?? 0;
}

/** The closest known word (edit distance at most 2, or a unique prefix), for "did you mean". */
export function suggest(word: string, known: readonly string[]): string | undefined {
  const prefixed = known.filter((k) => k.startsWith(word));
  if (word.length >= 2 && prefixed.length === 1) return prefixed[0];
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const d = distance(word, k);
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return best;
}
