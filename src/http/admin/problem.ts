import type { ServerResponse } from 'node:http';
import { ERROR_CODES, VirtError, type VirtErrorCode } from '../../virt/errors.ts';

/** An RFC 9457 problem: a VirtError with the HTTP status and headers to answer it with; the detail never carries a secret. */
export class Problem extends VirtError {
  readonly status: number;
  readonly headers: Record<string, string>;

  constructor(status: number, code: VirtErrorCode, detail: string, headers: Record<string, string> = {}) {
    super(code, detail);
    this.name = 'Problem';
    this.status = status;
    this.headers = headers;
  }
}

export const PROBLEM_TYPE_BASE = 'urn:virt-exporter:problem:';

export function problemBody(p: Problem, requestId: string): string {
  return JSON.stringify({
    type: PROBLEM_TYPE_BASE + p.code,
    title: ERROR_CODES[p.code].summary,
    status: p.status,
    code: p.code,
    detail: p.message,
    request_id: requestId,
  });
}

export function sendProblem(res: ServerResponse, p: Problem, requestId: string, base: Record<string, string>): void {
  const body = problemBody(p, requestId);
  res.writeHead(p.status, {
    ...base,
    ...p.headers,
    'Content-Type': 'application/problem+json',
    'Content-Length': String(Buffer.byteLength(body)),
  });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown, base: Record<string, string>): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { ...base, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) });
  res.end(body);
}

/** Quotes a client-supplied value for an error detail, bounded so a huge input is not echoed back. */
export function quote(value: string, max = 64): string {
  return JSON.stringify(value.length > max ? value.slice(0, max) + '...' : value);
}
