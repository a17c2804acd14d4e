/**
 * A fragment of the convict schema. Each area (core, qemu, xen, admin) owns
 * one; src/config/schema.ts composes them. Every leaf becomes a flag
 * (--section.key), an environment variable (VIRT_EXPORTER_SECTION_KEY, dots
 * and dashes as underscores) and a config-file key, and is listed by --help.
 */
export interface SettingSpec {
  doc: string;
  format: unknown;
  default: unknown;
  /** Overrides the derived environment variable name. */
  env?: string;
  /** Hidden from --help (internal/testing knobs). */
  hidden?: boolean;
  sensitive?: boolean;
  nullable?: boolean;
  /** The flag may be given more than once; the values are joined with commas. */
  repeatable?: boolean;
}

export interface SchemaFragment {
  [key: string]: SettingSpec | SchemaFragment;
}
