/**
 * Just enough PromQL lexing to find the metric names an expression selects
 * and the function call each selector sits directly inside. Independent of
 * the generator on purpose: it reads the committed expressions as Grafana would
 * send them.
 */
export interface SelectorUse {
  metric: string;
  /** Innermost enclosing function or aggregation ('' at top level or in plain parentheses). */
  enclosing: string;
  /** Whether a range [..] follows the selector. */
  ranged: boolean;
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'and', 'or', 'unless', 'atan2']);
const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'count', 'group', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values', 'limitk', 'limit_ratio']);
/** Keywords followed by a parenthesised label list. */
const LABEL_LIST = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

export function selectorsOf(expr: string): SelectorUse[] {
  const out: SelectorUse[] = [];
  const stack: string[] = [];
  let pendingAggregation: string | undefined;
  let i = 0;
  const n = expr.length;
  const skipSpace = (): void => {
    while (i < n && /\s/.test(expr[i] as string)) i++;
  };
  const skipString = (): void => {
    const q = expr[i];
    i++;
    while (i < n && expr[i] !== q) i += expr[i] === '\\' ? 2 : 1;
    i++;
  };
  const skipBalanced = (open: string, close: string): void => {
    let depth = 0;
    while (i < n) {
      const c = expr[i] as string;
      if (c === '"' || c === "'" || c === '`') {
        skipString();
        continue;
      }
      if (c === open) depth++;
      if (c === close) {
        depth--;
        if (depth === 0) {
          i++;
          return;
        }
      }
      i++;
    }
    throw new Error(`unbalanced ${open}${close} in ${expr}`);
  };
  while (i < n) {
    const c = expr[i] as string;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"' || c === "'" || c === '`') {
      skipString();
    } else if (c === '(') {
      stack.push(pendingAggregation ?? '');
      pendingAggregation = undefined;
      i++;
    } else if (c === ')') {
      stack.pop();
      i++;
    } else if (c === '[') {
      skipBalanced('[', ']');
    } else if (c === '{') {
      // A bare {matchers} selector without a name would select anything; we never write one.
      throw new Error(`selector without a metric name in ${expr}`);
    } else if (/[0-9.]/.test(c)) {
      // Number or duration literal (10, 0.5, 1e3, 5m).
      i += (/^[0-9.][0-9A-Za-z.]*/.exec(expr.slice(i)) as RegExpExecArray)[0].length;
    } else if (/[A-Za-z_:]/.test(c)) {
      const m = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(expr.slice(i)) as RegExpExecArray;
      const word = m[0];
      i += word.length;
      skipSpace();
      if (KEYWORDS.has(word)) {
        if (LABEL_LIST.has(word) && expr[i] === '(') skipBalanced('(', ')');
        continue;
      }
      if (AGGREGATIONS.has(word)) {
        pendingAggregation = word;
        continue;
      }
      if (expr[i] === '(') {
        pendingAggregation = word;
        continue;
      }
      // A metric selector, with optional matchers and range.
      if (expr[i] === '{') skipBalanced('{', '}');
      skipSpace();
      let ranged = false;
      if (expr[i] === '[') {
        ranged = true;
        skipBalanced('[', ']');
      }
      out.push({ metric: word, enclosing: stack[stack.length - 1] ?? '', ranged });
    } else {
      i++;
    }
  }
  if (stack.length !== 0) throw new Error(`unbalanced parentheses in ${expr}`);
  return out;
}
