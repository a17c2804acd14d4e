/**
 * Roles and what each may do, derived from the operation table
 * (src/drivers/ops.ts): each operation the admin API offers names its action
 * and least role there. Roles are ordered: each includes the ones below it.
 */
import { OP_NAMES, OPERATIONS, ROLES, type OpName, type Role } from '../../drivers/ops.ts';

export { ROLES, type Role };

type Table = typeof OPERATIONS;
type Offered = { [K in OpName]: Table[K]['admin'] extends { readonly action: string } ? K : never }[OpName];
type ActionOf<K extends Offered> = Table[K]['admin'] extends { readonly action: infer N } ? N : never;

/** Every admin action, in the table's order. */
export type Action = ActionOf<Offered>;
/** Actions on one domain: POST /api/v1/domains/{id}/{action}. */
export type DomainAction = { [K in Offered]: Table[K]['admin'] extends { readonly route: 'action' } ? ActionOf<K> : never }[Offered];

const offered = OP_NAMES.flatMap((n) => {
  const a = OPERATIONS[n].admin;
  return a === undefined ? [] : [a];
});

export const ACTIONS: readonly Action[] = offered.map((a) => a.action);
export const DOMAIN_ACTIONS: readonly DomainAction[] = offered.filter((a) => a.route === 'action').map((a) => a.action);

/** The least role that may perform each action. */
export const REQUIRED_ROLE: Readonly<Record<Action, Role>> = Object.fromEntries(offered.map((a) => [a.action, a.role])) as Record<Action, Role>;

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
