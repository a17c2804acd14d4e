/**
 * The heart of virt-qemud: the registry of domains and the per-domain lock
 * that orders operations on one domain. The work is done by its parts, as in
 * libvirt's qemu driver: process.ts (launch, recover, kill, wait), monitor.ts
 * (QMP attach and the run-state machine), stats.ts (bulk statistics) and
 * save-image.ts (save, restore and their migration waits).
 */
import { existsSync } from 'node:fs';
import type { BulkStats, DomainInfo, DomainRef, DomainStats, HostInfo, ReadError, RestoreOptions, StatsGroup } from '../drivers/types.ts';
import { VirtError, toVirtError } from '../virt/errors.ts';
import { QemudContext, type SupervisorOptions } from './context.ts';
import { validateDefinition, type DomainDefinition } from './definition.ts';
import { closeCaches, Domain, invalidState } from './domain.ts';
import { hostInfo } from './host-cpu.ts';
import { checkDefinitionPaths, checkImagePath } from './images.ts';
import { apply, command } from './monitor.ts';
import type { QemudPaths } from '../qemud-shared/paths.ts';
import { checkAlive, kill, launch, reattach, recover, requireMonitor, waitStopped } from './process.ts';
import { kvmUsable } from './qemu-args.ts';
import { imageDefinition, loadSaveKey, restoreInto, saveDomain } from './save-image.ts';
import { runCommand } from './spawn.ts';
import { domainInfo, readStats } from './stats.ts';
import { Store } from './store.ts';

export type { SupervisorOptions } from './context.ts';

export class Supervisor {
  readonly #ctx: QemudContext;
  readonly #domains = new Map<string, Domain>();
  #qemuVersion: string | undefined;

  constructor(opts: SupervisorOptions) {
    this.#ctx = new QemudContext(opts, new Store(opts.paths, opts.logger));
  }

  get paths(): QemudPaths {
    return this.#ctx.o.paths;
  }

  /** Loads definitions and re-attaches to every QEMU that is still running. */
  init(): void {
    const ctx = this.#ctx;
    ctx.store.init();
    ctx.saveKey = loadSaveKey(ctx.o.paths.stateDir);
    for (const def of ctx.store.loadDefinitions()) {
      const d = new Domain(def);
      d.managedSave = ctx.store.loadSave(def.name);
      this.#domains.set(def.name, d);
    }
    for (const d of this.#domains.values()) {
      const rec = ctx.store.loadRuntime(d.name);
      if (rec === null) continue;
      ctx.noteId(rec.id);
      recover(ctx, d, rec);
    }
  }

  async close(): Promise<void> {
    for (const d of this.#domains.values()) {
      d.monitor.qmp?.close();
      closeCaches(d.caches);
    }
    await Promise.resolve();
  }

  // ---------------------------------------------------------------- registry

  #find(key: string): Domain {
    if (typeof key !== 'string' || key === '') throw new VirtError('VIRT_ERR_INVALID_ARG', 'a domain name, UUID or id is required');
    const byName = this.#domains.get(key);
    if (byName !== undefined) return byName;
    const lower = key.toLowerCase();
    for (const d of this.#domains.values()) if (d.stored.uuid === lower) return d;
    if (/^\d+$/.test(key)) {
      const id = Number(key);
      for (const d of this.#domains.values()) if (d.runtime?.id === id) return d;
    }
    throw new VirtError('VIRT_ERR_NO_DOMAIN', `no domain with name, UUID or id ${JSON.stringify(key)}`, { domain: key });
  }

  #findOrNull(key: string): Domain | null {
    try {
      return this.#find(key);
    } catch {
      return null;
    }
  }

  #sorted(): Domain[] {
    return [...this.#domains.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Runs fn after every earlier operation on d has finished (whether it succeeded or not). */
  #locked<T>(d: Domain, fn: () => Promise<T>): Promise<T> {
    const run = d.lock.then(fn, fn);
    d.lock = run.catch(() => undefined);
    return run;
  }

  lookupDomain(key: string): DomainRef {
    const d = this.#find(key);
    checkAlive(this.#ctx, d);
    return d.ref();
  }

  listDomains(opts: { active?: boolean; inactive?: boolean } = {}): DomainRef[] {
    const active = opts.active ?? true;
    const inactive = opts.inactive ?? true;
    const out: DomainRef[] = [];
    for (const d of this.#sorted()) {
      checkAlive(this.#ctx, d);
      if (d.active ? active : inactive) out.push(d.ref());
    }
    return out;
  }

  domainDefinition(key: string): DomainDefinition {
    return this.#find(key).stored;
  }

  async domainInfo(key: string, signal?: AbortSignal): Promise<DomainInfo> {
    const ctx = this.#ctx;
    const d = this.#find(key);
    let stat = checkAlive(ctx, d);
    if (d.active && (d.monitor.qmp === null || d.monitor.qmp.closed)) {
      await reattach(ctx, d, ctx.o.qmpTimeoutMs, signal);
      stat = checkAlive(ctx, d);
    }
    return domainInfo(d, stat);
  }

  async allDomainStats(opts: { groups: readonly StatsGroup[]; inactive?: boolean; timeoutMs?: number }, signal?: AbortSignal): Promise<BulkStats> {
    const groups = new Set(opts.groups);
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    const errors: ReadError[] = [];
    const results = await Promise.all(
      this.#sorted().map(async (d): Promise<DomainStats | null> => {
        try {
          return await readStats(this.#ctx, d, groups, opts.inactive ?? false, deadline, errors, signal);
        } catch (err) {
          const e = toVirtError(err, 'VIRT_ERR_OPERATION_FAILED');
          errors.push({ domain: d.name, code: e.code, message: e.message });
          return null;
        }
      }),
    );
    return { domains: results.filter((r) => r !== null), errors };
  }

  // ---------------------------------------------------------------- host

  async version(): Promise<string> {
    if (this.#qemuVersion === undefined) {
      const o = this.#ctx.o;
      const emulator = o.emulator !== undefined && o.emulator !== '' ? o.emulator : 'qemu-system-x86_64';
      const r = await runCommand(emulator, ['--version'], 10_000);
      const m = /version (\d+\.\d+\.\d+)/.exec(r.stdout);
      if (m?.[1] === undefined) throw new VirtError('VIRT_ERR_OPERATION_FAILED', `cannot read the version of ${emulator}: ${r.stderr.trim() || r.stdout.trim()}`);
      this.#qemuVersion = m[1];
    }
    return this.#qemuVersion;
  }

  async hostInfo(): Promise<HostInfo> {
    return hostInfo(kvmUsable() ? 'QEMU/KVM' : 'QEMU/TCG', await this.version());
  }

  // ---------------------------------------------------------------- definitions

  define(input: unknown): DomainRef {
    const ctx = this.#ctx;
    const raw = input as Record<string, unknown> | null;
    const def = validateDefinition(input);
    checkDefinitionPaths(def, ctx.o.imageDirs ?? []);
    const existing = this.#domains.get(def.name);
    const hadUuid = raw !== null && typeof raw === 'object' && raw['uuid'] !== undefined;
    if (existing !== undefined) {
      if (existing.managedSave !== null) {
        // As libvirt: a managed save image holds the old configuration; redefining under it would be silently undone by start.
        throw new VirtError(
          'VIRT_ERR_OPERATION_INVALID',
          `domain ${def.name} has a managed save image (${existing.managedSave.file}); remove it first (managedSaveRemove) or restore and stop the domain, then redefine`,
          { domain: def.name },
        );
      }
      if (!hadUuid) def.uuid = existing.stored.uuid;
      if (def.uuid !== existing.stored.uuid) {
        throw new VirtError('VIRT_ERR_DOM_EXIST', `domain ${def.name} already exists with UUID ${existing.stored.uuid}`, { domain: def.name });
      }
      // Redefinition: MACs derived from the UUID stay as they were.
      if (!hadUuid) def.nics = validateDefinition({ ...(input as object), uuid: def.uuid }).nics;
    }
    for (const d of this.#domains.values()) {
      if (d.stored.uuid === def.uuid && d.name !== def.name) {
        throw new VirtError('VIRT_ERR_DOM_EXIST', `UUID ${def.uuid} is already used by domain ${d.name}`, { domain: def.name });
      }
    }
    ctx.store.saveDefinition(def);
    let d = existing;
    if (d !== undefined) d.stored = def;
    else {
      d = new Domain(def);
      this.#domains.set(def.name, d);
    }
    ctx.log.info('domain defined', { domain: def.name, uuid: def.uuid });
    return d.ref();
  }

  undefine(key: string): Promise<void> {
    const d = this.#find(key);
    return this.#locked(d, () => {
      checkAlive(this.#ctx, d);
      if (d.active) return Promise.reject(invalidState(d, 'undefine', 'it is running; destroy or shut it down first'));
      this.#ctx.store.removeDefinition(d.name);
      this.#ctx.store.removeSave(d.name);
      this.#domains.delete(d.name);
      this.#ctx.log.info('domain undefined', { domain: d.name });
      return Promise.resolve();
    });
  }

  /** Discards a domain's managed save record (the image file itself is left alone), as virsh managedsave-remove. */
  managedSaveRemove(key: string): Promise<void> {
    const d = this.#find(key);
    return this.#locked(d, () => {
      if (d.managedSave === null) return Promise.reject(invalidState(d, 'remove the managed save of', 'it has none'));
      this.#ctx.log.info('managed save removed', { domain: d.name, file: d.managedSave.file });
      this.#ctx.store.removeSave(d.name);
      d.managedSave = null;
      return Promise.resolve();
    });
  }

  // ---------------------------------------------------------------- lifecycle

  start(key: string): Promise<void> {
    const d = this.#find(key);
    return this.#locked(d, async () => {
      checkAlive(this.#ctx, d);
      if (d.active) throw invalidState(d, 'start', 'it is already running');
      if (d.managedSave !== null && existsSync(d.managedSave.file)) {
        // A managed save image exists: starting resumes from it, as libvirt does.
        await restoreInto(this.#ctx, d, d.managedSave.file);
        return;
      }
      await launch(this.#ctx, d, d.stored, false);
    });
  }

  suspend(key: string): Promise<void> {
    const d = this.#find(key);
    return this.#locked(d, async () => {
      await requireMonitor(this.#ctx, d, 'suspend');
      if (d.state !== 'running') throw invalidState(d, 'suspend', 'it is not running');
      await command(this.#ctx, d, 'stop');
      apply(this.#ctx, d, { kind: 'suspended' });
    });
  }

  resume(key: string): Promise<void> {
    const d = this.#find(key);
    return this.#locked(d, async () => {
      await requireMonitor(this.#ctx, d, 'resume');
      if (d.state !== 'paused') throw invalidState(d, 'resume', 'it is not paused');
      await command(this.#ctx, d, 'cont');
      apply(this.#ctx, d, { kind: 'resumed' });
    });
  }

  reboot(key: string): Promise<void> {
    const d = this.#find(key);
    return this.#locked(d, async () => {
      await requireMonitor(this.#ctx, d, 'reboot');
      if (d.state !== 'running' && d.state !== 'paused') throw invalidState(d, 'reboot', 'it is neither running nor paused');
      await command(this.#ctx, d, 'system_reset');
    });
  }

  shutdown(key: string, opts: { force?: boolean; graceSeconds?: number } = {}): Promise<void> {
    const ctx = this.#ctx;
    const d = this.#find(key);
    return this.#locked(d, async () => {
      await requireMonitor(ctx, d, 'shut down');
      const grace = opts.graceSeconds ?? ctx.o.shutdownGraceSeconds;
      apply(ctx, d, { kind: 'expect-exit', reason: 'shutdown' });
      await command(ctx, d, 'system_powerdown');
      if (await waitStopped(ctx, d, grace * 1000)) return;
      if (opts.force === true) {
        ctx.log.warn('guest ignored the ACPI power button; destroying it', { domain: d.name, graceSeconds: grace });
        await kill(ctx, d, 'destroyed');
        return;
      }
      if (d.active) apply(ctx, d, { kind: 'exit-not-expected' });
      throw new VirtError('VIRT_ERR_OPERATION_TIMEOUT', `domain ${d.name} did not stop within ${grace} s of the ACPI power-button press; the guest may ignore ACPI (use force to destroy it)`, {
        domain: d.name,
      });
    });
  }

  destroy(key: string): Promise<void> {
    const d = this.#find(key);
    return this.#locked(d, async () => {
      checkAlive(this.#ctx, d);
      if (!d.active) throw invalidState(d, 'destroy', 'it is not running');
      await kill(this.#ctx, d, 'destroyed');
    });
  }

  save(key: string, file: string): Promise<void> {
    const d = this.#find(key);
    checkImagePath(file, true);
    return this.#locked(d, async () => {
      await requireMonitor(this.#ctx, d, 'save');
      await saveDomain(this.#ctx, d, file);
    });
  }

  /**
   * Restores a domain from a save image. Only a domain that is defined now
   * comes back, with its current definition; an image whose header disagrees
   * with that definition, or whose MAC does not verify, is refused
   * (VIRT_ERR_SAVE_INVALID). `domain` names the domain the caller means (the
   * image must be of it); `define` allows re-creating a domain that is no
   * longer defined from the image (the admin API gives it to admins only).
   */
  async restore(file: string, opts: RestoreOptions = {}): Promise<DomainRef> {
    checkImagePath(file, false);
    const hdef = imageDefinition(this.#ctx, file);
    let dom = [...this.#domains.values()].find((x) => x.stored.uuid === hdef.uuid);
    if (opts.domain !== undefined) {
      const want = opts.domain;
      const named = this.#findOrNull(want);
      if (named !== null && named !== dom) {
        throw new VirtError('VIRT_ERR_SAVE_INVALID', `save image ${file} is of domain ${hdef.name} (${hdef.uuid}), not of ${named.name} (${named.stored.uuid})`, { domain: named.name });
      }
      if (named === null && hdef.name !== want && hdef.uuid !== want.toLowerCase()) {
        throw new VirtError('VIRT_ERR_SAVE_INVALID', `save image ${file} is of domain ${hdef.name} (${hdef.uuid}), not of ${JSON.stringify(want)}`, { domain: hdef.name });
      }
    }
    if (dom === undefined) {
      if (opts.define !== true) {
        throw new VirtError('VIRT_ERR_NO_DOMAIN', `save image ${file} is of domain ${hdef.name} (${hdef.uuid}), which is not defined; re-creating a domain from a save image needs the define option`, { domain: hdef.name });
      }
      const clash = this.#domains.get(hdef.name);
      if (clash !== undefined) throw new VirtError('VIRT_ERR_DOM_EXIST', `domain ${hdef.name} exists with another UUID (${clash.stored.uuid}) than the save image (${hdef.uuid})`, { domain: hdef.name });
      this.define(hdef);
      this.#ctx.log.warn('domain re-created from a save image', { domain: hdef.name, uuid: hdef.uuid, file });
      dom = this.#find(hdef.name);
    }
    const target = dom;
    await this.#locked(target, async () => {
      checkAlive(this.#ctx, target);
      if (target.active) throw invalidState(target, 'restore', 'it is running; destroy it first');
      await restoreInto(this.#ctx, target, file);
    });
    return target.ref();
  }
}
