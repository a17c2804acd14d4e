import type { BlockReading, DomainInfo, DomainState, DomainStats, MemoryReading, NetReading, VcpuReading } from '../types.ts';
import type { TestDomainSpec } from './host-file.ts';

const MIB = 1024 * 1024;
const PERIOD_SECONDS = 300;
const OMEGA = (2 * Math.PI) / PERIOD_SECONDS;
const SWING = 0.5;

/**
 * Load curve: the integral of a rate that swings +-50% around its mean over
 * five minutes. Its derivative never drops below half the mean rate, so every
 * counter derived from it grows strictly while the domain runs and graphs
 * look alive.
 */
export function effectiveSeconds(t: number, phase: number): number {
  return t + (SWING / OMEGA) * (Math.cos(phase) - Math.cos(OMEGA * t + phase));
}

export type SimState = Extract<DomainState, 'running' | 'paused' | 'shutoff'>;

/** One simulated domain: its definition, lifecycle state and accrued run time. */
export class SimDomain {
  spec: TestDomainSpec;
  state: SimState = 'shutoff';
  reason = 'unknown';
  id: number | null = null;
  /** Seconds spent running (vCPUs scheduled) since the last start. */
  #runSeconds = 0;
  /** When the current run's counters started (epoch ms); null before the first boot. */
  #countingSince: number | null = null;
  #runningSince: number | null = null;
  readonly #phase: number;

  constructor(spec: TestDomainSpec) {
    this.spec = spec;
    let h = 0;
    for (const c of spec.uuid) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    this.#phase = (h % 6283) / 1000;
  }

  runSeconds(nowMs: number): number {
    return this.#runSeconds + (this.#runningSince === null ? 0 : Math.max(0, nowMs - this.#runningSince) / 1000);
  }

  /** Moves to a new state, accruing run time so counters stay monotonic. */
  transition(to: SimState, reason: string, nowMs: number, id: number | null = this.id): void {
    this.#runSeconds = this.runSeconds(nowMs);
    this.#runningSince = to === 'running' ? nowMs : null;
    this.state = to;
    this.reason = reason;
    this.id = to === 'shutoff' ? null : id;
  }

  /** A fresh boot: a new process, so its counters start from zero (as a real hypervisor's do). */
  boot(id: number, nowMs: number, reason: string): void {
    this.#countingSince = nowMs;
    this.#runSeconds = 0;
    this.#runningSince = null;
    this.transition('running', reason, nowMs, id);
  }

  /** Saved image contents, restored by restoreFrom. */
  snapshot(nowMs: number): { runSeconds: number; state: SimState } {
    return { runSeconds: this.runSeconds(nowMs), state: this.state };
  }

  restoreFrom(saved: { runSeconds: number; state: SimState }, id: number, nowMs: number): void {
    // The counters go on from the saved run: they count from that long before now.
    this.#countingSince = nowMs - saved.runSeconds * 1000;
    this.#runSeconds = saved.runSeconds;
    this.#runningSince = null;
    this.transition(saved.state === 'shutoff' ? 'running' : saved.state, 'restored', nowMs, id);
  }

  #curve(nowMs: number, offset: number): number {
    return effectiveSeconds(this.runSeconds(nowMs), this.#phase + offset);
  }

  cpuSeconds(nowMs: number): number {
    return this.spec.vcpus * this.spec.load * this.#curve(nowMs, 0);
  }

  info(nowMs: number): DomainInfo {
    const active = this.state !== 'shutoff';
    return {
      name: this.spec.name,
      uuid: this.spec.uuid,
      id: this.id,
      state: this.state,
      stateReason: this.reason,
      maxMemoryBytes: this.spec.maxMemoryMiB * MIB,
      memoryBytes: active ? this.spec.memoryMiB * MIB : 0,
      vcpus: this.spec.vcpus,
      cpuTimeSeconds: active ? this.cpuSeconds(nowMs) : 0,
      osType: this.spec.osType,
      arch: this.spec.arch,
      machine: this.spec.machine,
      autostart: this.spec.autostart,
      persistent: true,
      ...(active && this.#countingSince !== null ? { startTimeSeconds: this.#countingSince / 1000 } : {}),
    };
  }

  stats(nowMs: number, groups: ReadonlySet<string>): DomainStats {
    const out: DomainStats = { info: this.info(nowMs) };
    const active = this.state !== 'shutoff';
    if (groups.has('cpu') && active) {
      const total = out.info.cpuTimeSeconds;
      out.cpu = { userSeconds: total * 0.8, systemSeconds: total * 0.2 };
    }
    if (groups.has('vcpu')) out.vcpus = this.#vcpus(out.info.cpuTimeSeconds);
    if (groups.has('memory')) out.memory = this.#memory(nowMs);
    // A shut-off domain has no process: no device counters, as a real hypervisor reports.
    if (groups.has('block')) out.block = active ? this.#block(nowMs) : [];
    if (groups.has('net')) out.net = active ? this.#net(nowMs) : [];
    return out;
  }

  #vcpus(total: number): VcpuReading[] {
    const n = this.spec.vcpus;
    if (this.state === 'shutoff') return [];
    const weights = Array.from({ length: n }, (_, i) => 1 + ((i * 7 + Math.floor(this.#phase * 10)) % 3) * 0.3);
    const sum = weights.reduce((a, b) => a + b, 0);
    const state = this.state === 'running' ? 'running' : 'blocked';
    // A little steal time, as on a moderately busy host.
    return weights.map((w, i) => ({ id: i, state, timeSeconds: (total * w) / sum, delaySeconds: (total * w) / sum / 50, cpu: (i + (this.id ?? 0)) % 16 }));
  }

  #memory(nowMs: number): MemoryReading {
    const active = this.state !== 'shutoff';
    const current = this.spec.memoryMiB * MIB;
    const reading: MemoryReading = { maximumBytes: this.spec.maxMemoryMiB * MIB, currentBytes: active ? current : 0 };
    if (!active) return reading;
    reading.balloonBytes = current;
    reading.rssBytes = Math.floor(current * 0.85);
    if (this.spec.balloon) {
      const total = current - 64 * MIB;
      const t = this.runSeconds(nowMs);
      const usedFraction = 0.5 + 0.15 * Math.sin(OMEGA * t + this.#phase);
      const free = Math.floor(total * (1 - usedFraction) * 0.6);
      const caches = Math.floor(total * (1 - usedFraction) * 0.4);
      reading.guest = {
        totalBytes: total,
        freeBytes: free,
        availableBytes: free + caches,
        diskCachesBytes: caches,
        swapInBytes: 0,
        swapOutBytes: 0,
        majorFaults: Math.floor(this.#curve(nowMs, 1) * 0.5),
        minorFaults: Math.floor(this.#curve(nowMs, 1) * 800),
        lastUpdateSeconds: Math.floor(nowMs / 1000),
      };
    }
    return reading;
  }

  #block(nowMs: number): BlockReading[] {
    return this.spec.disks.map((d, i) => {
      const curve = this.#curve(nowMs, 2 + i);
      const readBytes = Math.floor(d.readBytesPerSecond * curve);
      const writeBytes = Math.floor(d.writeBytesPerSecond * curve);
      const readRequests = Math.floor(readBytes / 16384);
      const writeRequests = Math.floor(writeBytes / 8192);
      return {
        device: d.target,
        path: d.path,
        readBytes,
        writeBytes,
        readRequests,
        writeRequests,
        flushRequests: Math.floor(writeRequests / 10),
        readTimeSeconds: readRequests * 0.0004,
        writeTimeSeconds: writeRequests * 0.0009,
        flushTimeSeconds: Math.floor(writeRequests / 10) * 0.002,
        errors: 0,
        capacityBytes: d.capacityGiB * 1024 * MIB,
        allocationBytes: Math.min(d.capacityGiB * 1024 * MIB, Math.floor(d.capacityGiB * 1024 * MIB * 0.3) + writeBytes),
      };
    });
  }

  #net(nowMs: number): NetReading[] {
    return this.spec.nics.map((n, i) => {
      if (n.type === 'user') return { interface: n.name, mac: n.mac, counters: null };
      const curve = this.#curve(nowMs, 5 + i);
      const rxBytes = Math.floor(n.rxBytesPerSecond * curve);
      const txBytes = Math.floor(n.txBytesPerSecond * curve);
      const rxPackets = Math.floor(rxBytes / 900);
      const txPackets = Math.floor(txBytes / 700);
      return {
        interface: n.name,
        mac: n.mac,
        counters: {
          rxBytes,
          rxPackets,
          rxErrors: 0,
          rxDrops: Math.floor(rxPackets / 50_000),
          txBytes,
          txPackets,
          txErrors: 0,
          txDrops: 0,
        },
      };
    });
  }
}
