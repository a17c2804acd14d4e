import { Counter, type Registry } from 'prom-client';

import { REGISTRY_METRICS } from '../../collectors/catalogue.ts';

const SPEC = REGISTRY_METRICS.adminRequests;
export const ADMIN_REQUESTS_METRIC = SPEC.name;

/** Outcomes are a closed set derived from the status, so the label stays bounded. */
export const OUTCOMES = ['ok', 'unauthenticated', 'forbidden', 'rate_limited', 'invalid', 'not_found', 'conflict', 'unsupported', 'error'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export function outcomeFor(status: number): Outcome {
  if (status < 400) return 'ok';
  switch (status) {
    case 401: return 'unauthenticated';
    case 403: return 'forbidden';
    case 429: return 'rate_limited';
    case 404: return 'not_found';
    case 409: return 'conflict';
    case 501: return 'unsupported';
    default: return status < 500 ? 'invalid' : 'error';
  }
}

/** Registers (or reuses, on a restart within one process) virt_admin_requests_total{action,outcome}. */
export function adminRequestsCounter(registry: Registry): Counter<'action' | 'outcome'> {
  const existing = registry.getSingleMetric(ADMIN_REQUESTS_METRIC);
  if (existing !== undefined) return existing as Counter<'action' | 'outcome'>;
  return new Counter({
    name: ADMIN_REQUESTS_METRIC,
    help: SPEC.help,
    labelNames: ['action', 'outcome'] as const,
    registers: [registry],
  });
}
