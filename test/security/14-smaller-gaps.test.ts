// Finding 14: smaller gaps. A __proto__ key in the main --config was silently
// accepted; virtctl crashed on a null reply; a test:///…/fifo.json URI hung
// and a link to /dev/zero read ~600 MB; deeply nested YAML reported
// "Maximum call stack size exceeded"; the 0666 read-only socket returned
// kernel command lines.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/schema.ts';
import { FrameDecoder, encodeFrame } from '../../src/qemud-shared/protocol.ts';
import { REDACTED } from '../../src/qemud/server.ts';
import { ERROR_CODES } from '../../src/virt/errors.ts';
import { RawConn, rawFrame, ROOT, sandbox, startDaemon, VIRTCTL_BIN, type Sandbox } from '../qemud/helpers.ts';
import { run } from './users.ts';


void describe('finding 14: smaller gaps', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'virt-sec14-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  void it('a __proto__ key in the main --config is refused naming it (VIRT_ERR_CONFIG), by the exporter binary too', async () => {
    const file = join(dir, 'proto.yaml');
    writeFileSync(file, '__proto__:\n  polluted: true\nlog:\n  level: debug\n');
    assert.throws(() => loadConfig(['--config', file]), (err: Error & { code?: string }) => err.code === 'VIRT_ERR_CONFIG' && err.message.includes('__proto__'));
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
    const json = join(dir, 'proto.json');
    writeFileSync(json, '{"log": {"__proto__": {"polluted": true}}}');
    assert.throws(() => loadConfig(['--config', json]), { code: 'VIRT_ERR_CONFIG' });
    const r = await run(join(ROOT, 'bin/virt-exporter'), ['--config', file], { ...process.env });
    assert.equal(r.code, ERROR_CODES.VIRT_ERR_CONFIG.exit, r.stderr);
    assert.match(r.stderr, /__proto__/);
  });

  void it('deeply nested YAML says what is wrong, not "Maximum call stack size exceeded"', () => {
    const file = join(dir, 'deep.yaml');
    writeFileSync(file, 'log: ' + '['.repeat(50_000) + ']'.repeat(50_000) + '\n');
    assert.throws(() => loadConfig(['--config', file]), (err: Error & { code?: string }) => err.code === 'VIRT_ERR_CONFIG' && /nested/.test(err.message) && !/call stack/.test(err.message));
    const moderate = join(dir, 'moderate.yaml');
    writeFileSync(moderate, 'log: ' + '['.repeat(100) + ']'.repeat(100) + '\n');
    assert.throws(() => loadConfig(['--config', moderate]), (err: Error & { code?: string }) => err.code === 'VIRT_ERR_CONFIG' && /nested more than/.test(err.message));
  });

  void it('a test:/// host file that is a FIFO or a link to /dev/zero is refused at once (VIRT_ERR_XML_ERROR)', async () => {
    const fifo = join(dir, 'fifo.json');
    execFileSync('mkfifo', [fifo]);
    const zero = join(dir, 'zero.json');
    symlinkSync('/dev/zero', zero);
    for (const f of [fifo, zero]) {
      const r = await run(VIRTCTL_BIN, ['--connect', `test://${f}`, 'list'], { ...process.env });
      assert.equal(r.code, ERROR_CODES.VIRT_ERR_XML_ERROR.exit, `${f}: ${r.stderr}`);
      assert.match(r.stderr, /not a regular file/);
    }
  });

  void describe('virt-qemud answers', () => {
    let sb: Sandbox;
    const fakes: Server[] = [];
    before(() => {
      sb = sandbox();
    });
    after(async () => {
      for (const f of fakes) f.close();
      await sb.cleanup();
    });

    void it('virtctl reports a null reply as VIRT_ERR_RPC instead of crashing', async () => {
      // A peer that answers every request with a null result (a broken or hostile daemon).
      mkdirSync(sb.runtimeDir, { recursive: true, mode: 0o700 });
      for (const path of [sb.rwSocket, sb.roSocket]) {
        const fake = createServer((c) => {
          const dec = new FrameDecoder(1 << 20);
          c.on('data', (d: Buffer) => {
            for (const m of dec.push(d)) if (m.kind === 'message') c.write(encodeFrame({ v: 1, id: (m.value as { id: number }).id, result: null }));
          });
          c.on('error', () => undefined);
        });
        await new Promise<void>((r) => fake.listen(path, r));
        fakes.push(fake);
      }
      const def = join(dir, 'def.json');
      writeFileSync(def, JSON.stringify({ name: 'n', memoryMiB: 64, vcpus: 1 }));
      for (const args of [['define', def], ['dominfo', 'n']]) {
        const r = await run(VIRTCTL_BIN, ['--connect', 'qemu:///session', ...args], { ...sb.env, VIRT_EXPORTER_QEMU_AUTOSTART: 'false' });
        assert.equal(r.code, ERROR_CODES.VIRT_ERR_RPC.exit, `${args[0]}: ${r.stderr}`);
        assert.doesNotMatch(r.stderr, /Cannot read properties/);
      }
      for (const f of fakes.splice(0)) await new Promise((r) => f.close(r));
    });

    void it('the read-only socket redacts the kernel command line; the read-write socket shows it', async () => {
      const daemon = await startDaemon(sb);
      try {
        const secret = 'console=ttyS0 token=s3cr3t';
        const rw = await RawConn.connect(sb.rwSocket);
        rw.write(rawFrame(JSON.stringify({ v: 1, id: 1, op: 'define', args: [{ name: 'sec14', memoryMiB: 64, vcpus: 1, kernel: { path: '/boot/vmlinuz', cmdline: secret } }] })));
        assert.equal((await rw.next()).error, undefined);
        rw.write(rawFrame(JSON.stringify({ v: 1, id: 2, op: 'domainDefinition', args: ['sec14'] })));
        assert.equal(((await rw.next()).result as { kernel: { cmdline: string } }).kernel.cmdline, secret);
        rw.close();
        const ro = await RawConn.connect(sb.roSocket);
        ro.write(rawFrame(JSON.stringify({ v: 1, id: 3, op: 'domainDefinition', args: ['sec14'] })));
        const reply = await ro.next();
        assert.equal((reply.result as { kernel: { cmdline: string } }).kernel.cmdline, REDACTED);
        assert.ok(!JSON.stringify(reply).includes('s3cr3t'));
        ro.close();
      } finally {
        daemon.kill('SIGKILL');
      }
    });
  });
});
