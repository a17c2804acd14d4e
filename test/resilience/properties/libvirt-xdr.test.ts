import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseDomainXml, parseMetadataRules } from '../../../src/drivers/libvirt/domxml.ts';
import { decodePacket, decodeRemoteError, readAllDomainStats, readLifecycleEvent, readNodeInfo, readTypedParam, HEADER_BYTES } from '../../../src/drivers/libvirt/protocol.ts';
import { XdrReader, XdrWriter } from '../../../src/drivers/libvirt/xdr.ts';
import { isVirtError } from '../../../src/virt/errors.ts';
import { holds, hostileBytes, parsesOrTyped } from './check.ts';

/** XDR-shaped bytes: 4-byte words biased to small counts, huge counts and the typed-parameter type codes. */
const xdrWords = fc
  .array(fc.oneof(fc.nat({ max: 12 }), fc.constantFrom(0xffffffff, 0x7fffffff, 0x80000000, 4096, 16384, 33554432), fc.nat()), { maxLength: 64 })
  .map((words) => {
    const b = Buffer.alloc(words.length * 4);
    words.forEach((w, i) => b.writeUInt32BE(w >>> 0, i * 4));
    return b;
  });
const bytes = fc.oneof(xdrWords, hostileBytes(300).map((b) => Buffer.from(b)));

/** A well-formed all-domain-stats body with typed parameters of every type, to cut and corrupt. */
const statsBody = fc
  .array(fc.record({ name: fc.string({ maxLength: 10 }), id: fc.integer(), params: fc.array(fc.tuple(fc.string({ maxLength: 12 }), fc.oneof(fc.integer(), fc.boolean(), fc.string({ maxLength: 8 }), fc.double({ noNaN: true }))), { maxLength: 4 }) }), { maxLength: 3 })
  .map((doms) => {
    const w = new XdrWriter();
    w.uint(doms.length);
    for (const d of doms) {
      w.string(d.name, 64);
      w.fixedOpaque(Buffer.alloc(16, 7), 16);
      w.int(d.id);
      w.uint(d.params.length);
      for (const [k, v] of d.params) {
        w.string(k, 64);
        if (typeof v === 'boolean') {
          w.int(6);
          w.int(v ? 1 : 0);
        } else if (typeof v === 'string') {
          w.int(7);
          w.string(v, 64);
        } else if (Number.isInteger(v)) {
          w.int(1);
          w.int(v | 0);
        } else {
          w.int(5);
          w.double(v);
        }
      }
    }
    w.uint(0);
    return w.finish();
  });

void describe('hostile input: libvirt remote protocol (XDR)', () => {
  void it('every reply decoder returns or gives VIRT_ERR_RPC for any bytes', () => {
    holds(bytes, (b) => {
      parsesOrTyped(() => readAllDomainStats(new XdrReader(b)), ['VIRT_ERR_RPC']);
      parsesOrTyped(() => readTypedParam(new XdrReader(b)), ['VIRT_ERR_RPC']);
      parsesOrTyped(() => readNodeInfo(new XdrReader(b)), ['VIRT_ERR_RPC']);
      parsesOrTyped(() => readLifecycleEvent(b), ['VIRT_ERR_RPC']);
      // A remote_error always becomes an error, typed whatever it carries.
      const e = parsesOrTyped(() => decodeRemoteError(b), ['VIRT_ERR_RPC']);
      if (e.ok) assert.ok(isVirtError(e.value));
    }, 5000);
  });

  void it('a stats reply cut or corrupted anywhere decodes or gives VIRT_ERR_RPC, never allocating past the message', () => {
    holds(fc.tuple(statsBody, fc.nat(), fc.nat({ max: 255 }), fc.boolean()), ([body, at, byte, cut]) => {
      const b = Buffer.from(body);
      const i = body.length === 0 ? 0 : at % body.length;
      const input = cut ? b.subarray(0, i) : (b.length > 0 && (b[i] = byte), b);
      const r = parsesOrTyped(() => readAllDomainStats(new XdrReader(input)), ['VIRT_ERR_RPC']);
      if (r.ok) assert.ok(r.value.length <= input.length / 28 + 1);
    }, 4000);
  });

  void it('packets: any frame decodes to a header or gives VIRT_ERR_RPC', () => {
    holds(fc.oneof(bytes, fc.tuple(fc.nat({ max: 64 }), bytes).map(([len, rest]) => { const b = Buffer.alloc(HEADER_BYTES + rest.length); b.writeUInt32BE(len, 0); rest.copy(b, HEADER_BYTES); return b; })), (frame) => {
      parsesOrTyped(() => decodePacket(frame), ['VIRT_ERR_RPC']);
    }, 4000);
  });

  void it('domain XML of any shape parses into metadata or gives VIRT_ERR_RPC', () => {
    const el = fc.constantFrom('<domain>', '</domain>', '<os><type arch="x86_64" machine="pc">hvm</type></os>', '<memory unit="KiB">', '</memory>', '65536', '<vcpu>', '</vcpu>', '<metadata>', '</metadata>', '<nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1"><nova:name>x</nova:name></nova:instance>', '<devices><interface type="network"><mac address="52:54:00:AA:BB:CC"/><target dev="vnet0"/></interface></devices>', '<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">]>', '&a;', '<', '>', '"', '\u0000');
    const rules = parseMetadataRules('', 'nova-1.1');
    holds(fc.oneof(fc.array(el, { maxLength: 30 }).map((a) => a.join('')), fc.string({ unit: 'binary', maxLength: 200 })), (xml) => {
      parsesOrTyped(() => parseDomainXml(xml, rules), ['VIRT_ERR_RPC']);
    }, 3000);
  });
});
