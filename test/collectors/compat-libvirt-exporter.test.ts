/**
 * --compat=libvirt-exporter serves every series the inovex
 * prometheus-libvirt-exporter's own Grafana dashboard queries and its README
 * lists, with the labels those queries select on. The queries are recorded
 * here (in PromQL, condensed), not copied from the dashboard's JSON.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COLLECTORS, type CollectorName } from '../../src/collectors/catalogue.ts';
import type { Snapshot } from '../../src/collectors/snapshot.ts';
import { Exposition } from '../../src/http/exposition.ts';
import { parseMetrics, valueOf } from '../helpers/exporter.ts';
import { promtoolCheck } from '../helpers/promtool.ts';

/** The dashboard's panel and variable queries ($vars as Grafana writes them). */
const DASHBOARD_QUERIES = [
  'label_values(libvirt_domain_openstack_info, project_name)',
  'label_values(libvirt_domain_openstack_info{project_name="$project_name"}, instance_name)',
  'label_values(libvirt_domain_openstack_info{instance_name="$vm_name", project_name="$project_name"}, instance_id)',
  'label_values(libvirt_domain_openstack_info{instance_id="$vm_id"}, domain)',
  'libvirt_domain_info_state{domain="$dom_id"}',
  'libvirt_domain_vcpu_current{domain="$dom_id"}',
  'libvirt_domain_memory_stats_maximum_bytes{domain="$dom_id"}',
  'count(libvirt_domain_block_stats_info{domain="$dom_id"})',
  'count(libvirt_domain_interface_stats_info{domain="$dom_id"})',
  'rate(libvirt_domain_info_cpu_time_seconds_total{domain="$dom_id"}[5m]) / libvirt_domain_vcpu_current{domain="$dom_id"} * 100',
  'sum by (domain) (rate(libvirt_domain_vcpu_delay_seconds_total{domain="$dom_id"}[5m])) / sum by (domain) (rate(libvirt_domain_vcpu_time_seconds_total{domain="$dom_id"}[5m]))',
  'libvirt_domain_memory_stats_used_percent{domain="$dom_id"}',
  'rate(libvirt_domain_memory_stats_swap_in_bytes{domain="$dom_id"}[5m]) + rate(libvirt_domain_memory_stats_swap_out_bytes{domain="$dom_id"}[5m])',
  'sum by (domain, target_device) ({__name__=~"libvirt_domain_block_stats_(read|write)_requests_total", domain="$dom_id"})',
  'sum by (domain, target_device) ({__name__=~"libvirt_domain_block_stats_(read|write)_bytes_total", domain="$dom_id"})',
  'sum by (domain, target_device) ({__name__=~"libvirt_domain_block_stats_read_time_seconds_total", domain="$dom_id"})',
  'sum by (domain, target_device) ({__name__=~"libvirt_domain_block_stats_write_time_seconds_total", domain="$dom_id"})',
  'sum by (domain, target_device) (rate(libvirt_domain_interface_stats_receive_bytes_total{domain="$dom_id"}[5m]) + rate(libvirt_domain_interface_stats_transmit_bytes_total{domain="$dom_id"}[5m]))',
  'sum by (domain, target_device) (rate(libvirt_domain_interface_stats_receive_packets_total{domain="$dom_id"}[5m]) + rate(libvirt_domain_interface_stats_transmit_packets_total{domain="$dom_id"}[5m]))',
  'sum by (domain, target_device) (rate(libvirt_domain_interface_stats_receive_errors_total{domain="$dom_id"}[5m]))',
  'sum by (domain, target_device) (rate(libvirt_domain_interface_stats_transmit_errors_total{domain="$dom_id"}[5m]))',
  'sum by (domain, target_device) (rate(libvirt_domain_interface_stats_receive_drops_total{domain="$dom_id"}[5m]))',
];

/** Names the exporter's README (and the issue) list beyond the dashboard. */
const README_NAMES = ['libvirt_up', 'libvirt_domains', 'libvirt_domain_info', 'libvirt_domain_memory_stats_usable_bytes', 'libvirt_domain_memory_stats_available_bytes', 'libvirt_domain_memory_stats_unused_bytes', 'libvirt_domain_memory_stats_actual_balloon_bytes', 'libvirt_domain_memory_stats_rss_bytes', 'libvirt_domain_info_maximum_memory_bytes', 'libvirt_domain_info_memory_usage_bytes', 'libvirt_domain_info_virtual_cpus', 'libvirt_domain_interface_stats_transmit_drops_total', 'libvirt_domain_block_stats_flush_requests_total'];

/** Metric names in a query, with {__name__=~"a_(x|y)_b"} expanded. */
function namesIn(q: string): string[] {
  const out: string[] = [];
  for (const m of q.matchAll(/__name__=~"([^"]+)"/g)) {
    const re = m[1] ?? '';
    const alt = /^(.*)\(([^)]+)\)(.*)$/.exec(re);
    if (alt === null) out.push(re);
    else for (const a of (alt[2] ?? '').split('|')) out.push(`${alt[1]}${a}${alt[3]}`);
  }
  for (const m of q.replace(/__name__=~"[^"]+"/g, '').matchAll(/\b(libvirt_[a-z_]+)/g)) out.push(m[1] ?? '');
  return out;
}

/** Label names a query selects or groups on. */
function labelsIn(q: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const name of namesIn(q)) {
    const labels = new Set<string>();
    for (const m of q.matchAll(/([a-z_]+)="\$/g)) labels.add(m[1] ?? '');
    for (const m of q.matchAll(/by \(([^)]+)\)/g)) for (const l of (m[1] ?? '').split(',')) labels.add(l.trim());
    const lv = /label_values\([^,]+,\s*([a-z_]+)\)/.exec(q);
    if (lv !== null) labels.add(lv[1] ?? '');
    out.set(name, labels);
  }
  return out;
}

function snapshot(): Snapshot {
  return {
    driver: 'libvirt',
    startedAt: Date.now(),
    durationSeconds: 0.01,
    up: true,
    host: undefined,
    parts: Object.fromEntries(COLLECTORS.map((c) => [c, { success: true, durationSeconds: 0.01, errors: [] }])),
    domains: [
      {
        info: { name: 'instance-0001', uuid: '6695eb01-f6a4-8304-79aa-97f2502e193f', id: 1, state: 'running', maxMemoryBytes: 2 ** 30, memoryBytes: 2 ** 30, vcpus: 2, cpuTimeSeconds: 12.5, osType: 'hvm', arch: 'x86_64', machine: 'pc-q35-7.2', labels: { instance_name: 'web-1', flavor: 'm1.small', project_id: 'p-1', project_name: 'demo', user_id: 'u-1', user_name: 'alice' } },
        cpu: { userSeconds: 10, systemSeconds: 2 },
        vcpus: [{ id: 0, state: 'running', timeSeconds: 6, delaySeconds: 0.5 }, { id: 1, state: 'running', timeSeconds: 6, delaySeconds: 0.25 }],
        memory: { maximumBytes: 2 ** 30, currentBytes: 2 ** 30, balloonBytes: 2 ** 30, rssBytes: 2 ** 29, guest: { totalBytes: 1000, freeBytes: 250, availableBytes: 600, swapInBytes: 4096, swapOutBytes: 8192, majorFaults: 3, minorFaults: 30, diskCachesBytes: 100 } },
        block: [{ device: 'vda', path: '/var/lib/nova/instances/x/disk', readBytes: 1, writeBytes: 2, readRequests: 3, writeRequests: 4, flushRequests: 5, readTimeSeconds: 0.1, writeTimeSeconds: 0.2, flushTimeSeconds: 0.3, capacityBytes: 10 ** 9 }],
        net: [{ interface: 'tap0', mac: '52:54:00:00:00:01', counters: { rxBytes: 1, rxPackets: 2, rxErrors: 0, rxDrops: 0, txBytes: 3, txPackets: 4, txErrors: 0, txDrops: 0 } }],
      },
    ],
  };
}

void describe('--compat=libvirt-exporter', () => {
  void it('serves every series and label the dashboard queries and the README lists', async () => {
    const all = new Set<CollectorName>(COLLECTORS);
    const r = await new Exposition('libvirt-exporter').render(snapshot(), all, { version: 't', errorCounts: new Map() }, undefined, 'text');
    const body = Buffer.concat(r.chunks).toString();
    r.release();
    await promtoolCheck(body);
    const samples = parseMetrics(body);
    const wanted = new Map<string, Set<string>>();
    for (const q of DASHBOARD_QUERIES) for (const [n, ls] of labelsIn(q)) wanted.set(n, new Set([...(wanted.get(n) ?? []), ...ls]));
    for (const n of README_NAMES) if (!wanted.has(n)) wanted.set(n, new Set());
    assert.ok(wanted.size >= 30, `recorded ${wanted.size} names`);
    const missing: string[] = [];
    for (const [name, labels] of wanted) {
      const hits = samples.filter((s) => s.name === name);
      if (hits.length === 0) {
        missing.push(name);
        continue;
      }
      for (const l of labels) assert.ok(hits.every((h) => l in h.labels), `${name} lacks label ${l}`);
    }
    assert.deepEqual(missing, [], 'names the dashboard or README uses but --compat does not serve');
    // Values match the native readings, in that exporter's conventions.
    assert.equal(valueOf(samples, 'libvirt_up'), 1);
    assert.equal(valueOf(samples, 'libvirt_domain_info_state', { domain: 'instance-0001' }), 1);
    assert.equal(valueOf(samples, 'libvirt_domain_vcpu_current', { domain: 'instance-0001' }), 2);
    assert.equal(valueOf(samples, 'libvirt_domain_memory_stats_used_percent', { domain: 'instance-0001' }), 75);
    assert.equal(valueOf(samples, 'libvirt_domain_memory_stats_usable_bytes', { domain: 'instance-0001' }), 600);
    assert.equal(valueOf(samples, 'libvirt_domain_memory_stats_available_bytes', { domain: 'instance-0001' }), 1000);
    assert.equal(valueOf(samples, 'libvirt_domain_block_stats_info', { domain: 'instance-0001', target_device: 'vda', source_file: '/var/lib/nova/instances/x/disk' }), 1);
    assert.equal(valueOf(samples, 'libvirt_domain_interface_stats_info', { domain: 'instance-0001', target_device: 'tap0', mac_address: '52:54:00:00:00:01' }), 1);
    assert.equal(samples.filter((s) => s.name.startsWith('libvirt_')).filter((s) => 'uuid' in s.labels).length, 0);
    assert.equal(valueOf(samples, 'libvirt_domain_openstack_info', { domain: 'instance-0001', instance_name: 'web-1', instance_id: '6695eb01-f6a4-8304-79aa-97f2502e193f', flavor_name: 'm1.small', project_name: 'demo', user_id: 'u-1' }), 1);
    // Configured metadata labels ride on virt_domain_info, and on nothing else.
    assert.equal(valueOf(samples, 'virt_domain_info', { domain: 'instance-0001', instance_name: 'web-1', project_id: 'p-1', os_type: 'hvm' }), 1);
    assert.equal(samples.filter((s) => s.name.startsWith('virt_') && s.name !== 'virt_domain_info' && 'instance_name' in s.labels).length, 0);
  });

  void it('serves nothing extra without --compat', async () => {
    const r = await new Exposition().render(snapshot(), new Set<CollectorName>(COLLECTORS), { version: 't', errorCounts: new Map() }, undefined, 'text');
    const body = Buffer.concat(r.chunks).toString();
    r.release();
    assert.equal(parseMetrics(body).filter((s) => s.name.startsWith('libvirt_')).length, 0);
  });
});
