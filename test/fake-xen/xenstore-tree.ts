/**
 * The fake host's XenStore data: a tree of nodes with values and permissions,
 * watches, and copy-on-start transactions (commit fails with EAGAIN when
 * anything else changed meanwhile, as xenstored does).
 */
export interface XsNode {
  value: Buffer;
  perms: string[];
  children: Map<string, XsNode>;
}

export class XsFailure extends Error {
  readonly errno: string;
  constructor(errno: string) {
    super(errno);
    this.errno = errno;
  }
}

function newNode(value = ''): XsNode {
  return { value: Buffer.from(value), perms: ['n0'], children: new Map() };
}

function cloneNode(n: XsNode): XsNode {
  return { value: n.value, perms: [...n.perms], children: new Map([...n.children].map(([k, c]) => [k, cloneNode(c)])) };
}

export function splitPath(path: string): string[] {
  if (!path.startsWith('/')) throw new XsFailure('EINVAL');
  if (path.length > 3072 || path.includes('//') || (path.length > 1 && path.endsWith('/'))) throw new XsFailure('EINVAL');
  return path === '/' ? [] : path.slice(1).split('/');
}

/** One view of the tree (the live one, or a transaction's copy). */
export class XsTreeView {
  root: XsNode;
  readonly changed: string[] = [];

  constructor(root: XsNode) {
    this.root = root;
  }

  find(path: string): XsNode | undefined {
    let n: XsNode | undefined = this.root;
    for (const part of splitPath(path)) {
      n = n.children.get(part);
      if (n === undefined) return undefined;
    }
    return n;
  }

  read(path: string): Buffer {
    const n = this.find(path);
    if (n === undefined) throw new XsFailure('ENOENT');
    return n.value;
  }

  directory(path: string): string[] {
    const n = this.find(path);
    if (n === undefined) throw new XsFailure('ENOENT');
    return [...n.children.keys()];
  }

  /** Creates missing parents with empty values, as xenstored does. */
  write(path: string, value: Buffer): void {
    let n = this.root;
    for (const part of splitPath(path)) {
      let c = n.children.get(part);
      if (c === undefined) {
        c = { value: Buffer.alloc(0), perms: [...n.perms], children: new Map() };
        n.children.set(part, c);
      }
      n = c;
    }
    n.value = value;
    this.changed.push(path);
  }

  mkdir(path: string): void {
    if (this.find(path) !== undefined) return;
    this.write(path, Buffer.alloc(0));
  }

  /** Missing node is fine unless its parent is missing too. */
  rm(path: string): void {
    const parts = splitPath(path);
    if (parts.length === 0) throw new XsFailure('EINVAL');
    const parent = this.find('/' + parts.slice(0, -1).join('/'));
    if (parent === undefined) throw new XsFailure('ENOENT');
    if (parent.children.delete(parts[parts.length - 1] as string)) this.changed.push(path);
  }

  getPerms(path: string): string[] {
    const n = this.find(path);
    if (n === undefined) throw new XsFailure('ENOENT');
    return n.perms;
  }

  setPerms(path: string, perms: string[]): void {
    const n = this.find(path);
    if (n === undefined) throw new XsFailure('ENOENT');
    if (perms.length === 0 || !perms.every((p) => /^[wrbn]\d+$/.test(p))) throw new XsFailure('EINVAL');
    n.perms = perms;
    this.changed.push(path);
  }
}

export interface XsWatch {
  path: string;
  token: string;
  fire: (path: string, token: string) => void;
}

export class XsTree {
  #live = new XsTreeView(newNode());
  #generation = 0;
  readonly #tx = new Map<number, { view: XsTreeView; generation: number }>();
  #nextTx = 1;
  readonly watches = new Set<XsWatch>();

  get live(): XsTreeView {
    return this.#live;
  }

  /** Bumped on every committed change (DIRECTORY_PART's gencnt). */
  get generation(): number {
    return this.#generation;
  }

  /** Runs a change on the live tree, then fires watches for what it touched. */
  mutate(fn: (v: XsTreeView) => void): void {
    const view = this.#live;
    const before = view.changed.length;
    fn(view);
    const changed = view.changed.splice(before);
    if (changed.length > 0) this.#generation++;
    for (const p of changed) this.fireWatches(p);
  }

  fireWatches(changedPath: string): void {
    for (const w of this.watches) {
      const special = w.path.startsWith('@');
      if (special ? changedPath === w.path : changedPath === w.path || changedPath.startsWith(w.path === '/' ? '/' : w.path + '/')) {
        w.fire(changedPath, w.token);
      }
    }
  }

  startTransaction(): number {
    const id = this.#nextTx++;
    this.#tx.set(id, { view: new XsTreeView(cloneNode(this.#live.root)), generation: this.#generation });
    return id;
  }

  view(txId: number): XsTreeView {
    if (txId === 0) return this.#live;
    const t = this.#tx.get(txId);
    if (t === undefined) throw new XsFailure('ENOENT');
    return t.view;
  }

  isTxWrite(txId: number): boolean {
    return txId !== 0;
  }

  endTransaction(txId: number, commit: boolean): void {
    const t = this.#tx.get(txId);
    if (t === undefined) throw new XsFailure('ENOENT');
    this.#tx.delete(txId);
    if (!commit || t.view.changed.length === 0) return;
    if (t.generation !== this.#generation) throw new XsFailure('EAGAIN');
    this.#live = new XsTreeView(t.view.root);
    this.#generation++;
    for (const p of t.view.changed) this.fireWatches(p);
  }
}
