/**
 * Roles and what each may do. Roles are ordered: each includes the ones
 * below it. One table, so docs/security.md and the tests read the same truth.
 */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export const DOMAIN_ACTIONS = ['start', 'shutdown', 'reboot', 'destroy', 'suspend', 'resume', 'save', 'restore'] as const;
export type DomainAction = (typeof DOMAIN_ACTIONS)[number];

export const ACTIONS = ['list', 'get', 'define', 'undefine', ...DOMAIN_ACTIONS] as const;
export type Action = (typeof ACTIONS)[number];

/** The least role that may perform each action. */
export const REQUIRED_ROLE: Readonly<Record<Action, Role>> = {
  list: 'viewer',
  get: 'viewer',
  start: 'operator',
  shutdown: 'operator',
  reboot: 'operator',
  suspend: 'operator',
  resume: 'operator',
  save: 'operator',
  restore: 'operator',
  destroy: 'admin',
  define: 'admin',
  undefine: 'admin',
};

/**
 * Capabilities inside an action that need more than the action's own role:
 * `shutdown {"force": true}` destroys the domain when the guest ignores ACPI,
 * so it needs what destroy needs; re-creating a domain that is no longer
 * defined from a save image is a define, so it needs what define needs.
 */
export const CAPABILITIES = ['shutdown.force', 'restore.define'] as const;
export type Capability = (typeof CAPABILITIES)[number];

export const CAPABILITY_ROLE: Readonly<Record<Capability, Role>> = {
  'shutdown.force': REQUIRED_ROLE.destroy,
  'restore.define': REQUIRED_ROLE.define,
};

export function roleHas(role: Role, capability: Capability): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(CAPABILITY_ROLE[capability]);
}

/** Actions that change a domain: audited with fsync, gated per domain. */
export function isStateChanging(action: Action): boolean {
  return action !== 'list' && action !== 'get';
}

export function roleAllows(role: Role, action: Action): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(REQUIRED_ROLE[action]);
}

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}
