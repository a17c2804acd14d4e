// The chart of bench/compare.ts, as hand-written SVG text: one row of panels
// per mode (paused, running, guest), p99 scrape latency and CPU per scrape
// against domains, one line per stack, both axes' values on a log scale
// (the stacks differ by factors, not by milliseconds).

export interface Series {
  mode: string;
  stack: string;
  points: Array<{ n: number; p99: number; cpu: number }>;
}

const COLOURS = ['#1b9e77', '#7570b3', '#d95f02', '#e7298a', '#66a61e'];
const W = 360;
const H = 220;
const M = { l: 56, r: 12, t: 28, b: 36 };

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function ticksLog(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) for (const m of [1, 2, 5]) out.push(m * 10 ** e);
  return out.filter((v) => v >= lo && v <= hi);
}

function panel(x0: number, y0: number, title: string, series: Series[], pick: (p: Series['points'][number]) => number, stacks: string[]): string {
  const pts = series.flatMap((s) => s.points);
  const ns = [...new Set(pts.map((p) => p.n))].sort((a, b) => a - b);
  const vals = pts.map(pick).filter((v) => v > 0 && Number.isFinite(v));
  const lo = 10 ** Math.floor(Math.log10(Math.min(...vals, 1)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...vals, 10)));
  const nMin = Math.min(...ns);
  const nMax = Math.max(...ns);
  const px = (n: number): number => x0 + M.l + (nMax === nMin ? (W - M.l - M.r) / 2 : ((n - nMin) / (nMax - nMin)) * (W - M.l - M.r));
  const py = (v: number): number => y0 + H - M.b - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (H - M.t - M.b);
  const parts: string[] = [];
  parts.push(`<text x="${x0 + M.l}" y="${y0 + 18}" font-size="13" font-weight="bold">${esc(title)}</text>`);
  parts.push(`<rect x="${x0 + M.l}" y="${y0 + M.t}" width="${W - M.l - M.r}" height="${H - M.t - M.b}" fill="none" stroke="#999"/>`);
  for (const t of ticksLog(lo, hi)) {
    parts.push(`<line x1="${x0 + M.l}" x2="${x0 + W - M.r}" y1="${py(t).toFixed(1)}" y2="${py(t).toFixed(1)}" stroke="#eee"/>`);
    parts.push(`<text x="${x0 + M.l - 4}" y="${(py(t) + 4).toFixed(1)}" font-size="10" text-anchor="end">${t}</text>`);
  }
  for (const n of ns) parts.push(`<text x="${px(n).toFixed(1)}" y="${y0 + H - M.b + 14}" font-size="10" text-anchor="middle">${n}</text>`);
  parts.push(`<text x="${x0 + M.l + (W - M.l - M.r) / 2}" y="${y0 + H - 6}" font-size="10" text-anchor="middle">domains</text>`);
  for (const s of series) {
    const c = COLOURS[stacks.indexOf(s.stack) % COLOURS.length] ?? '#000';
    const line = s.points.filter((p) => pick(p) > 0).map((p) => `${px(p.n).toFixed(1)},${py(pick(p)).toFixed(1)}`);
    if (line.length > 1) parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${line.join(' ')}"/>`);
    for (const p of s.points) {
      if (!(pick(p) > 0)) continue;
      parts.push(`<circle cx="${px(p.n).toFixed(1)}" cy="${py(pick(p)).toFixed(1)}" r="3" fill="${c}"><title>${esc(`${s.stack}: ${p.n} domains, ${pick(p).toFixed(1)}`)}</title></circle>`);
    }
  }
  return parts.join('\n');
}

export function chart(series: Series[], caption: string): string {
  const modes = [...new Set(series.map((s) => s.mode))];
  const stacks = [...new Set(series.map((s) => s.stack))];
  const legendH = 18 * stacks.length + 40;
  const width = 2 * W + 20;
  const height = modes.length * H + legendH;
  const body: string[] = [];
  modes.forEach((m, i) => {
    const ss = series.filter((s) => s.mode === m);
    body.push(panel(0, i * H, `${m}: p99 latency, ms`, ss, (p) => p.p99, stacks));
    body.push(panel(W + 20, i * H, `${m}: CPU per scrape, ms (all)`, ss, (p) => p.cpu, stacks));
  });
  const ly = modes.length * H + 10;
  stacks.forEach((s, i) => {
    const c = COLOURS[i % COLOURS.length] ?? '#000';
    body.push(`<line x1="${M.l}" x2="${M.l + 24}" y1="${ly + 18 * i + 6}" y2="${ly + 18 * i + 6}" stroke="${c}" stroke-width="3"/>`);
    body.push(`<text x="${M.l + 30}" y="${ly + 18 * i + 10}" font-size="12">${esc(s)}</text>`);
  });
  body.push(`<text x="${M.l}" y="${ly + 18 * stacks.length + 14}" font-size="10" fill="#555">${esc(caption)}; log scales.</text>`);
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
${body.join('\n')}
</svg>
`;
}
