import { readFileSync, statSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions, type Server as TlsServer } from 'node:tls';
import type { Logger } from '../../util/logger.ts';
import { VirtError } from '../../virt/errors.ts';

/** Where a PEM item comes from: a file (re-read when it changes) or inline text. */
export type PemSource = { file: string } | { inline: string };

export interface TlsMaterial {
  cert: PemSource;
  key: PemSource;
  ca?: PemSource;
}

function signature(src: PemSource | undefined): string {
  if (src === undefined || 'inline' in src) return '';
  try {
    // statSync follows symlinks, so a Kubernetes secret's ..data swap is seen.
    const st = statSync(src.file);
    return `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  } catch {
    return 'missing';
  }
}

function read(src: PemSource, what: string): string {
  if ('inline' in src) return src.inline;
  try {
    return readFileSync(src.file, 'utf8');
  } catch (err) {
    throw new VirtError('VIRT_ERR_CONFIG', `cannot read TLS ${what} ${src.file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * TLS certificate material that follows its files: before each new
 * connection's handshake it compares the files' stat signatures and, when one
 * changed, loads and checks the new material and swaps it into the server
 * with setSecureContext. A half-written or mismatched pair keeps the old
 * context (and is retried when the files change again).
 */
export class ReloadingTls {
  readonly #material: TlsMaterial;
  readonly #base: SecureContextOptions;
  readonly #logger: Logger;
  #signature: string;
  #failedSignature = '';

  constructor(material: TlsMaterial, base: SecureContextOptions, logger: Logger) {
    this.#material = material;
    this.#base = base;
    this.#logger = logger;
    this.#signature = this.#currentSignature();
  }

  #currentSignature(): string {
    return [signature(this.#material.cert), signature(this.#material.key), signature(this.#material.ca)].join('|');
  }

  /** Reads and validates the material now; throws VIRT_ERR_CONFIG naming the file. */
  options(): SecureContextOptions {
    const opts: SecureContextOptions = {
      ...this.#base,
      cert: read(this.#material.cert, 'certificate'),
      key: read(this.#material.key, 'key'),
    };
    if (this.#material.ca !== undefined) opts.ca = read(this.#material.ca, 'client CA');
    try {
      createSecureContext(opts);
    } catch (err) {
      throw new VirtError('VIRT_ERR_CONFIG', `TLS material is unusable (${describe(this.#material)}): ${(err as Error).message}`, { cause: err });
    }
    return opts;
  }

  /** Hooks the reload check in front of the server's own TLS connection listener. */
  attach(server: TlsServer): void {
    server.prependListener('connection', () => this.refresh(server));
  }

  refresh(server: TlsServer): void {
    const now = this.#currentSignature();
    if (now === this.#signature || now === this.#failedSignature) return;
    try {
      const opts = this.options();
      server.setSecureContext(opts);
      this.#signature = now;
      this.#failedSignature = '';
      this.#logger.info('reloaded TLS certificate material', { files: describe(this.#material) });
    } catch (err) {
      this.#failedSignature = now;
      this.#logger.warn('TLS certificate material changed but cannot be loaded; keeping the previous one', { err });
    }
  }
}

function describe(m: TlsMaterial): string {
  const name = (s: PemSource | undefined): string | undefined => (s === undefined ? undefined : 'file' in s ? s.file : 'inline');
  return [name(m.cert), name(m.key), name(m.ca)].filter((x) => x !== undefined).join(', ');
}
