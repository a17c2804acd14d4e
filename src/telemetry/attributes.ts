import type { MetricSpec } from '../collectors/catalogue.ts';

/**
 * Prometheus label name -> OpenTelemetry attribute name, where a convention
 * exists. OTel has no semantic conventions for virtual machines yet
 * (semantic-conventions#1084), so domain/uuid use vm.name/vm.id as our own
 * names until one does; the others are existing semantic-convention names.
 * Labels not listed keep their Prometheus name. docs/opentelemetry.md lists this.
 */
export const OTEL_ATTRIBUTE_NAMES: Readonly<Record<string, string>> = Object.freeze({
  domain: 'vm.name',
  uuid: 'vm.id',
  device: 'system.device',
  interface: 'network.interface.name',
  path: 'file.path',
  hostname: 'host.name',
  code: 'error.type',
  nodejs: 'process.runtime.version',
});

export function otelAttributeName(label: string): string {
  return OTEL_ATTRIBUTE_NAMES[label] ?? label;
}

/** Attribute names of a metric, in the order of its labels (computed once per metric). */
const cache = new Map<MetricSpec, readonly string[]>();
export function otelAttributeNames(spec: MetricSpec): readonly string[] {
  let names = cache.get(spec);
  if (names === undefined) {
    names = spec.labels.map(otelAttributeName);
    cache.set(spec, names);
  }
  return names;
}
