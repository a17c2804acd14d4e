/**
 * The one error base of virt-exporter. `code` strings are stable API: tests,
 * the admin endpoint and virtctl's exit codes key on them, never on messages.
 * The catalogue below is the source of docs/errors.md.
 */
export const ERROR_CODES = {
  VIRT_ERR_INTERNAL_ERROR: { status: 500, exit: 1, summary: 'An internal error; a bug in virt-exporter.' },
  VIRT_ERR_NO_SUPPORT: { status: 501, exit: 3, summary: 'The driver does not implement this operation.' },
  VIRT_ERR_INVALID_URI: { status: 400, exit: 2, summary: 'A connection URI is malformed or names no known driver.' },
  VIRT_ERR_INVALID_CONN: { status: 503, exit: 4, summary: 'The connection was already closed; open a new one (as libvirt\'s VIR_ERR_INVALID_CONN).' },
  VIRT_ERR_NO_CONNECT: { status: 503, exit: 4, summary: 'The backend (hypervisor, daemon, socket) could not be reached.' },
  VIRT_ERR_INVALID_ARG: { status: 400, exit: 2, summary: 'An argument is out of range, malformed or unknown.' },
  VIRT_ERR_CONFIG: { status: 400, exit: 2, summary: 'A configuration value, file or flag is invalid.' },
  VIRT_ERR_XML_ERROR: { status: 400, exit: 2, summary: 'A domain or host definition is malformed (the name is historical).' },
  VIRT_ERR_OPERATION_FAILED: { status: 500, exit: 1, summary: 'The backend tried and failed to carry out the operation.' },
  VIRT_ERR_OPERATION_INVALID: { status: 409, exit: 5, summary: 'The operation is not valid in the domain\'s current state.' },
  VIRT_ERR_OPERATION_DENIED: { status: 403, exit: 6, summary: 'Refused: a read-only connection or an insufficient role.' },
  VIRT_ERR_OPERATION_TIMEOUT: { status: 504, exit: 7, summary: 'The backend did not answer within the deadline.' },
  VIRT_ERR_OPERATION_IN_PROGRESS: { status: 409, exit: 5, summary: 'Another state-changing operation on this domain is under way.' },
  VIRT_ERR_NO_DOMAIN: { status: 404, exit: 8, summary: 'No domain with that name, UUID or id.' },
  VIRT_ERR_DOM_EXIST: { status: 409, exit: 5, summary: 'A domain with that name or UUID already exists.' },
  VIRT_ERR_RPC: { status: 502, exit: 9, summary: 'A protocol reply was malformed, truncated or oversized.' },
  VIRT_ERR_AUTH_FAILED: { status: 401, exit: 6, summary: 'Missing, malformed or unknown credentials.' },
  VIRT_ERR_AUTH_UNAVAILABLE: { status: 502, exit: 6, summary: 'The daemon demands an authentication method virt-exporter does not speak (SASL), or polkit refused; the message names the socket and the setting to change.' },
  VIRT_ERR_RATE_LIMITED: { status: 429, exit: 10, summary: 'Too many requests from this principal; retry later.' },
  VIRT_ERR_UNSAFE_PATH: { status: 403, exit: 6, summary: 'A runtime directory is not owned by the caller, is a link, or is open to other users; it is not trusted.' },
  VIRT_ERR_AUDIT_FAILED: { status: 503, exit: 1, summary: 'The admin audit log cannot be written (a full or failing disk), so a state-changing request was refused before anything changed.' },
  VIRT_ERR_SAVE_INVALID: { status: 409, exit: 5, summary: 'A save image is refused: its MAC does not verify, it is not a regular file of virt-qemud\'s, or it disagrees with the domain\'s current definition.' },
} as const;

export type VirtErrorCode = keyof typeof ERROR_CODES;

export interface VirtErrorOptions {
  cause?: unknown;
  /** Driver or sub-driver that raised it, e.g. "xen/xend". */
  driver?: string;
  /** Domain name or UUID the error is about. */
  domain?: string;
}

/**
 * Marks VirtErrors across module copies: bin/ may load build/ while a test or
 * tool loads src/, and instanceof would then fail for an error of the other copy.
 */
const VIRT_ERROR_BRAND = Symbol.for('virt-exporter.VirtError');

export class VirtError extends Error {
  readonly [VIRT_ERROR_BRAND] = true;
  readonly code: VirtErrorCode;
  readonly driver: string | undefined;
  readonly domain: string | undefined;

  constructor(code: VirtErrorCode, message: string, options: VirtErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VirtError';
    this.code = code;
    this.driver = options.driver;
    this.domain = options.domain;
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].status;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }
}

export function isVirtError(err: unknown, code?: VirtErrorCode): err is VirtError {
  if (typeof err !== 'object' || err === null || (err as Record<symbol, unknown>)[VIRT_ERROR_BRAND] !== true) return false;
  return code === undefined || (err as VirtError).code === code;
}

/** Wraps anything thrown into a VirtError, keeping an existing code. */
export function toVirtError(err: unknown, fallback: VirtErrorCode = 'VIRT_ERR_INTERNAL_ERROR'): VirtError {
  if (isVirtError(err)) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new VirtError(fallback, message, { cause: err });
}
