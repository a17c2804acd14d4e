// The operation table (src/drivers/ops.ts) and what is derived from it: every
// operation has its checks, virt-qemud's dispatch refuses what the table does
// not allow before the supervisor sees it, and hostile replies are protocol
// errors, never values that travel on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WRITE_OPERATIONS } from '../../src/drivers/driver.ts';
import { clientStubs, operation, OP_NAMES, OPERATIONS, type OpName, type Wire } from '../../src/drivers/ops.ts';
import { READ_OPS, WRITE_OPS } from '../../src/qemud-shared/protocol.ts';
import { dispatch } from '../../src/qemud/server.ts';
import type { Supervisor } from '../../src/qemud/supervisor.ts';
import { connectionFor } from '../../src/virt/connection.ts';
import { isVirtError } from '../../src/virt/errors.ts';
import { parseUri } from '../../src/virt/uri.ts';

const UUID = '6695eb01-f6a4-8304-79aa-97f2502e193f';
const REF = { name: 'web1', uuid: UUID, id: 3 };
const INFO = { ...REF, state: 'running', maxMemoryBytes: 1 << 30, memoryBytes: 1 << 29, vcpus: 2, cpuTimeSeconds: 12.5 };
const HOST = { hostname: 'h', model: 'x86_64', memoryBytes: 1 << 34, cpus: 8, mhz: 2400, nodes: 1, sockets: 1, cores: 4, threads: 2, hypervisor: 'QEMU', hypervisorVersion: '8.2.0' };

/** Driver-side arguments each operation can be called with (what virtctl, the collectors or the admin API pass). */
const SAMPLE_CALLS: { [K in OpName]: unknown[] } = {
  ping: [],
  version: [{}],
  hostInfo: [],
  listDomains: [{ active: true }],
  lookupDomain: ['web1'],
  domainInfo: [UUID, {}],
  allDomainStats: [{ groups: ['state', 'cpu'], inactive: true }],
  domainDefinition: ['web1'],
  define: [{ name: 'web1', memoryMiB: 64 }],
  undefine: ['web1'],
  start: ['web1'],
  shutdown: ['web1', { force: true }],
  reboot: ['3'],
  destroy: [UUID],
  suspend: ['web1'],
  resume: ['web1'],
  save: ['web1', '/var/lib/saves/web1.img'],
  restore: ['/var/lib/saves/web1.img', { domain: 'web1' }],
  managedSaveRemove: ['web1'],
};

function code(err: unknown): string {
  return isVirtError(err) ? err.code : `not a VirtError: ${String(err)}`;
}

/** A supervisor that must never be reached: dispatch refuses before it. */
const untouchable = new Proxy({} as Supervisor, {
  get(_t, p) {
    throw new Error(`the supervisor was reached (${String(p)}) for a request the table should have refused`);
  },
});

/** A supervisor that records what reached it. */
function recorder(): { sup: Supervisor; calls: Array<[string, unknown[]]> } {
  const calls: Array<[string, unknown[]]> = [];
  const sup = new Proxy({} as Supervisor, {
    get(_t, p) {
      return (...args: unknown[]) => {
        calls.push([String(p), args]);
        return p === 'domainDefinition' ? { name: 'web1', kernel: { path: '/k', cmdline: 'secret=1' } } : null;
      };
    },
  });
  return { sup, calls };
}

void describe('operation table', () => {
  void it('has every operation once, each with a write flag, an encoding, an argument check and a result check', () => {
    assert.equal(new Set(OP_NAMES).size, OP_NAMES.length);
    assert.deepEqual(Object.keys(SAMPLE_CALLS).sort(), [...OP_NAMES].sort(), 'the sample calls of this test cover the table');
    for (const name of OP_NAMES) {
      const spec = OPERATIONS[name];
      assert.equal(typeof spec.write, 'boolean', name);
      assert.equal(typeof spec.driver, 'boolean', name);
      assert.equal(typeof spec.encode, 'function', name);
      assert.equal(typeof spec.args, 'function', name);
      assert.equal(typeof spec.result, 'function', name);
    }
  });

  void it('what a client stub sends passes the server\'s argument check (encode then check round-trips)', () => {
    for (const name of OP_NAMES) {
      const spec = OPERATIONS[name];
      const wire = (spec.encode as (...a: unknown[]) => Wire)(...SAMPLE_CALLS[name]);
      const sent: unknown = JSON.parse(JSON.stringify(wire.args));
      assert.ok(Array.isArray(sent));
      assert.doesNotThrow(() => spec.args(sent), name);
    }
  });

  void it('derives WRITE_OPERATIONS and the protocol\'s read and write lists', () => {
    assert.deepEqual([...WRITE_OPERATIONS].sort(), ['define', 'destroy', 'reboot', 'restore', 'resume', 'save', 'shutdown', 'start', 'suspend', 'undefine']);
    assert.deepEqual([...READ_OPS].sort(), ['allDomainStats', 'domainDefinition', 'domainInfo', 'hostInfo', 'listDomains', 'lookupDomain', 'ping', 'version']);
    assert.deepEqual([...WRITE_OPS].sort(), [...WRITE_OPERATIONS, 'managedSaveRemove'].sort());
  });

  void it('knows only its own operations, not the names an object inherits', () => {
    for (const name of ['noSuchOp', 'constructor', '__proto__', 'toString', 'hasOwnProperty', '']) assert.equal(operation(name), undefined, name);
    assert.equal(operation('domainInfo'), OPERATIONS.domainInfo);
  });
});

void describe('virt-qemud dispatch through the table', () => {
  const signal = new AbortController().signal;

  void it('refuses unknown operations with VIRT_ERR_NO_SUPPORT', async () => {
    for (const op of ['noSuchOp', 'constructor', '__proto__', 'toString', 'close']) {
      await assert.rejects(dispatch(untouchable, op, [], false, signal), (e) => code(e) === 'VIRT_ERR_NO_SUPPORT', op);
    }
  });

  void it('refuses every write on the read-only socket with VIRT_ERR_OPERATION_DENIED, whatever the arguments', async () => {
    for (const op of WRITE_OPS) {
      await assert.rejects(dispatch(untouchable, op, SAMPLE_CALLS[op], true, signal), (e) => code(e) === 'VIRT_ERR_OPERATION_DENIED', op);
      await assert.rejects(dispatch(untouchable, op, [42, 43, 44], true, signal), (e) => code(e) === 'VIRT_ERR_OPERATION_DENIED', op);
    }
  });

  void it('refuses bad arguments with VIRT_ERR_INVALID_ARG before the supervisor sees them', async () => {
    const bad: Array<[OpName, unknown[]]> = [
      ['domainInfo', []],
      ['domainInfo', [42]],
      ['domainInfo', ['']],
      ['domainInfo', ['x'.repeat(257)]],
      ['domainInfo', ['web1', 'extra']],
      ['lookupDomain', [{ name: 'web1' }]],
      ['version', ['extra']],
      ['listDomains', ['active']],
      ['listDomains', [{ active: 'yes' }]],
      ['allDomainStats', [{ groups: ['state', 'bogus'] }]],
      ['allDomainStats', [{ groups: 'state' }]],
      ['allDomainStats', [{ timeoutMs: -1 }]],
      ['allDomainStats', [{ timeoutMs: Number.NaN }]],
      ['define', []],
      ['start', [null]],
      ['shutdown', ['web1', { force: 1 }]],
      ['shutdown', ['web1', { graceSeconds: 86401 }]],
      ['shutdown', ['web1', []]],
      ['save', ['web1']],
      ['save', ['web1', 7]],
      ['restore', []],
      ['restore', ['/f', { domain: 3 }]],
      ['restore', ['/f', { define: 'yes' }]],
      ['restore', ['/f', { other: true }]],
      ['managedSaveRemove', [['web1']]],
    ];
    for (const [op, args] of bad) {
      await assert.rejects(dispatch(untouchable, op, args, false, signal), (e) => code(e) === 'VIRT_ERR_INVALID_ARG', `${op} ${JSON.stringify(args)}`);
    }
  });

  void it('passes the checked arguments to the supervisor method of the same name', async () => {
    const { sup, calls } = recorder();
    await dispatch(sup, 'listDomains', [], false, signal);
    await dispatch(sup, 'shutdown', ['web1', { force: true, graceSeconds: 5, ignored: 1 }], false, signal);
    await dispatch(sup, 'restore', ['/f'], false, signal);
    await dispatch(sup, 'allDomainStats', [{}], true, signal);
    assert.deepEqual(
      calls.map(([m, a]) => [m, a.filter((x) => !(x instanceof AbortSignal))]),
      [
        ['listDomains', [{}]],
        ['shutdown', ['web1', { force: true, graceSeconds: 5 }]],
        ['restore', ['/f', {}]],
        ['allDomainStats', [{ groups: ['state', 'cpu', 'vcpu', 'memory', 'block', 'net'] }]],
      ],
    );
  });

  void it('answers ping itself and redacts the kernel command line on the read-only socket', async () => {
    const { sup } = recorder();
    assert.deepEqual(await dispatch(sup, 'ping', [], true, signal), { protocol: 1, pid: process.pid, readOnly: true });
    const def = (await dispatch(sup, 'domainDefinition', ['web1'], true, signal)) as { kernel: { cmdline: string } };
    assert.notEqual(def.kernel.cmdline, 'secret=1');
  });
});

void describe('result checks: a hostile reply is VIRT_ERR_RPC', () => {
  const hostile: Array<[OpName, unknown]> = [
    ['hostInfo', null],
    ['hostInfo', 'x'],
    ['hostInfo', { ...HOST, cpus: '8' }],
    ['hostInfo', { ...HOST, memoryBytes: -1 }],
    ['hostInfo', { ...HOST, hostname: 'h'.repeat(300) }],
    ['hostInfo', { ...HOST, freeMemoryBytes: 'lots' }],
    ['domainInfo', []],
    ['domainInfo', { ...INFO, state: 'exploded' }],
    ['domainInfo', { ...INFO, memoryBytes: '1' }],
    ['domainInfo', { ...INFO, name: undefined }],
    ['domainInfo', { ...INFO, autostart: 'yes' }],
    ['lookupDomain', 7],
    ['lookupDomain', { ...REF, uuid: 'not-a-uuid' }],
    ['lookupDomain', { ...REF, id: -1 }],
    ['lookupDomain', { ...REF, id: '3' }],
    ['lookupDomain', { ...REF, name: '' }],
    ['listDomains', { domains: [] }],
    ['listDomains', [REF, { ...REF, uuid: 3 }]],
    ['define', { name: 'web1' }],
    ['restore', null],
    ['version', 12],
    ['domainDefinition', 'x'],
    ['ping', { protocol: 1 }],
  ];

  void it('for each operation\'s own check', () => {
    for (const [op, raw] of hostile) {
      assert.throws(() => (OPERATIONS[op].result)(raw, 'peer'), (e) => code(e) === 'VIRT_ERR_RPC', `${op} ${JSON.stringify(raw)}`);
    }
  });

  void it('accepts well-formed replies unchanged', () => {
    assert.deepEqual(OPERATIONS.hostInfo.result(HOST, 'p'), HOST);
    assert.deepEqual(OPERATIONS.domainInfo.result({ ...INFO }, 'p'), INFO);
    assert.deepEqual(OPERATIONS.lookupDomain.result({ ...REF, id: null }, 'p'), { ...REF, id: null });
    assert.deepEqual(OPERATIONS.listDomains.result([REF], 'p'), [REF]);
  });

  void it('through the client stubs a driver is built from', async () => {
    for (const [op, raw] of hostile) {
      const spec = OPERATIONS[op];
      if (!spec.driver) continue;
      const stubs = clientStubs(() => Promise.resolve(raw), 'virt-qemud') as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
      await assert.rejects((stubs[op] as (...a: unknown[]) => Promise<unknown>)(...SAMPLE_CALLS[op]), (e) => code(e) === 'VIRT_ERR_RPC', `${op} ${JSON.stringify(raw)}`);
    }
  });

  void it('a hostile bulk reading costs only the bad domain, as before', async () => {
    const stubs = clientStubs(() => Promise.resolve({ domains: [{ info: INFO }, { info: { ...INFO, name: 'bad', state: 'x' } }], errors: [] }), 'virt-qemud');
    const r = await stubs.allDomainStats({ groups: ['state'] });
    assert.deepEqual(r.domains.map((d) => d.info.name), ['web1']);
    assert.deepEqual(r.errors.map((e) => [e.code, e.domain]), [['VIRT_ERR_RPC', 'bad']]);
  });

  void it('through a Connection, for any driver', async () => {
    const conn = connectionFor(parseUri('test:///default'), {
      name: 'hostile',
      hostInfo: () => Promise.resolve({ ...HOST, cpus: Number.NaN }),
      domainInfo: () => Promise.resolve({ ...INFO, state: 'nonsense' } as unknown as typeof INFO & { state: 'running' }),
      lookupDomain: () => Promise.resolve({ ...REF, uuid: '../../etc' }),
    }, true);
    await assert.rejects(conn.hostInfo(), (e) => code(e) === 'VIRT_ERR_RPC');
    await assert.rejects(conn.domainInfo('web1'), (e) => code(e) === 'VIRT_ERR_RPC');
    await assert.rejects(conn.lookupDomain('web1'), (e) => code(e) === 'VIRT_ERR_RPC');
  });
});
