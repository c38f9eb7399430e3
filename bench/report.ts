/**
 * Formatting for `npm run bench` (bench/bench.ts): the Markdown table with each figure's ratio to
 * nginx, and a grouped bar chart (SVG, no dependency) of the key figures normalised to nginx.
 * Pure functions over the measured samples, so that test/unit/bench-report.test.ts can check them.
 */

/** A figure of the table: how to read samples, print them, and which direction is better. */
export interface Figure {
  /** Key in {@link RowData.samples}. */
  key: string;
  /** Column header, with the unit. */
  header: string;
  /** Printed value of one number (median, min or max). */
  fmt: (x: number) => string;
  /** true when a larger value is better (pps), false when smaller is (µs, KiB). */
  higherIsBetter: boolean;
  /** Short label in the chart; figures without one are table-only. */
  chart?: string;
}

/** One system's measurements: samples per figure key (one per repetition), and why some are missing. */
export interface RowData {
  name: string;
  /** Set when the system cannot run at all: the row prints only this. */
  unavailable: string | null;
  samples: Record<string, number[]>;
  /** Why a figure has no samples (figure key -> reason). */
  missing: Record<string, string>;
  notes: string[];
}

/** Median and range of samples, or null when there are none. */
export function stats(values: readonly number[]): { med: number; min: number; max: number } | null {
  if (values.length === 0) return null;
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  const med = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { med, min: v[0], max: v[v.length - 1] };
}

/** Compact number: 3 significant digits, k from 10 000 and M from 1 000 000 up (157k, 1.23M, 8.19, 0.412). */
export function num(x: number): string {
  const a = Math.abs(x);
  if (a >= 999_500) return `${(x / 1e6).toPrecision(3)}M`;
  if (a >= 9_995) return `${(x / 1e3).toPrecision(3)}k`;
  if (a >= 100) return x.toFixed(0);
  if (a === 0) return '0';
  return x.toPrecision(3);
}

/**
 * Ratio of a row's median to nginx's, oriented so that > 1 is better than nginx (for "lower is better"
 * figures it is nginx / value). null when either is missing or zero.
 */
export function ratioToRef(fig: Figure, value: number | undefined, ref: number | undefined): number | null {
  if (value === undefined || ref === undefined || !(value > 0) || !(ref > 0)) return null;
  return fig.higherIsBetter ? value / ref : ref / value;
}

/** "med [min-max] ×r" (range only with 2+ samples; ratio when a reference is given). */
export function cell(fig: Figure, values: readonly number[], ref?: number): string {
  const s = stats(values);
  if (!s) return '-';
  let out = fig.fmt(s.med);
  if (values.length > 1) out += ` [${fig.fmt(s.min)}–${fig.fmt(s.max)}]`;
  const r = ratioToRef(fig, s.med, ref);
  if (r !== null) out += ` ${ratio(r)}×`;
  return out;
}

/** A ratio with 2 decimals, or 1 significant digit below 0.095 (0.004), so that none prints as 0.00. */
export function ratio(r: number): string {
  return r < 0.095 ? r.toPrecision(1) : r.toFixed(2);
}

const escape = (s: string) => s.replaceAll('|', '\\|').replaceAll('\n', ' ');

/**
 * The results table: one row per system, each figure as `median [min–max] ratio×`, where the ratio is
 * to the row named `refName` (nginx) and > 1 always means better than it. A system that could not run
 * prints its reason instead; a figure without samples prints `-` and its reason goes to the notes.
 */
export function markdownTable(figures: readonly Figure[], rows: readonly RowData[], refName: string): string {
  const ref = rows.find((r) => r.name === refName && !r.unavailable);
  const refMed = (key: string) => (ref ? stats(ref.samples[key] ?? [])?.med : undefined);
  const head = `| system | ${figures.map((f) => f.header).join(' | ')} | notes |\n|---|${figures.map(() => '---|').join('')}---|\n`;
  const lines = rows.map((r) => {
    if (r.unavailable) return `| ${r.name} | ${figures.map(() => '-').join(' | ')} | **not run:** ${escape(r.unavailable)} |`;
    const cells = figures.map((f) => cell(f, r.samples[f.key] ?? [], r === ref ? undefined : refMed(f.key)));
    const notes = [
      ...figures.filter((f) => r.missing[f.key]).map((f) => `${f.header}: ${r.missing[f.key]}`),
      ...r.notes,
    ];
    return `| ${r.name} | ${cells.join(' | ')} | ${escape([...new Set(notes)].join('; '))} |`;
  });
  return head + lines.join('\n') + '\n';
}

const fmtRatio = ratio;

const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#9c755f', '#bab0ac'];

/** Splits a label into lines of at most `width` characters at spaces (a longer word stays whole). */
export function wrap(label: string, width: number): string[] {
  const lines: string[] = [];
  for (const word of label.split(' ')) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last].length + 1 + word.length <= width) lines[last] += ` ${word}`;
    else lines.push(word);
  }
  return lines;
}

const xml = (s: string) => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');

/**
 * A grouped bar chart: one group per charted figure, one bar per system (rows that are unavailable or
 * named in `skip` are left out), height = ratio to nginx (> 1 better, see {@link ratioToRef}); nginx is
 * the dashed line at 1. Bars above `cap` are clipped and labelled with their value. Returns SVG text.
 */
export function svgChart(
  figures: readonly Figure[],
  rows: readonly RowData[],
  refName: string,
  opts: { title: string; subtitle: string; skip?: readonly string[]; cap?: number },
): string {
  const charted = figures.filter((f) => f.chart);
  const ref = rows.find((r) => r.name === refName && !r.unavailable);
  const shown = rows.filter((r) => !r.unavailable && !(opts.skip ?? []).includes(r.name));
  const med = (r: RowData, key: string) => stats(r.samples[key] ?? [])?.med;
  const ratios = shown.map((r) => charted.map((f) => ratioToRef(f, med(r, f.key), ref ? med(ref, f.key) : undefined)));
  const cap = opts.cap ?? 3;
  const top = Math.min(cap, Math.max(1.5, ...ratios.flat().filter((x): x is number => x !== null)));
  const yMax = Math.ceil(top * 2) / 2;

  const W = 1000, H = 520, left = 60, right = 20, plotTop = 70, plotBottom = 400;
  const plotH = plotBottom - plotTop;
  const groupW = (W - left - right) / Math.max(1, charted.length);
  const barW = Math.max(3, (groupW * 0.8) / Math.max(1, shown.length));
  const y = (v: number) => plotBottom - (Math.min(v, yMax) / yMax) * plotH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${left}" y="28" font-size="19" font-weight="bold">${xml(opts.title)}</text>`);
  out.push(`<text x="${left}" y="50" font-size="13" fill="#555">${xml(opts.subtitle)}</text>`);
  for (let v = 0; v <= yMax + 1e-9; v += 0.5) {
    out.push(`<line x1="${left}" x2="${W - right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${left - 8}" y="${(y(v) + 4).toFixed(1)}" font-size="12" text-anchor="end" fill="#555">${v.toFixed(1)}×</text>`);
  }
  charted.forEach((f, g) => {
    const x0 = left + g * groupW + groupW * 0.1;
    shown.forEach((r, i) => {
      const ratio = ratios[i][g];
      const x = x0 + i * barW;
      const color = PALETTE[i % PALETTE.length];
      if (ratio === null) {
        out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${plotBottom - 4}" font-size="9" text-anchor="middle" fill="#999" transform="rotate(-90 ${(x + barW / 2).toFixed(1)} ${plotBottom - 4})">n/a</text>`);
        return;
      }
      const h = plotBottom - y(ratio);
      out.push(`<rect x="${x.toFixed(1)}" y="${y(ratio).toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${Math.max(h, 1).toFixed(1)}" fill="${color}"><title>${xml(`${r.name}: ${f.header} ${fmtRatio(ratio)}× nginx`)}</title></rect>`);
      // the ratio above the bar, vertical (bars are narrow); clipped bars get it at the top
      const lx = (x + barW / 2 + 3).toFixed(1);
      const ly = (y(Math.min(ratio, yMax)) - 3).toFixed(1);
      out.push(`<text x="${lx}" y="${ly}" font-size="9" fill="#333" transform="rotate(-90 ${lx} ${ly})">${ratio >= 10 ? ratio.toFixed(0) : fmtRatio(ratio)}</text>`);
    });
    const cx = (left + g * groupW + groupW / 2).toFixed(1);
    const lines = wrap(f.chart ?? f.header, Math.max(8, Math.floor(groupW / 7.5)));
    out.push(`<text x="${cx}" y="${plotBottom + 18}" font-size="12" text-anchor="middle">${lines.map((l, k) => `<tspan x="${cx}" dy="${k ? 14 : 0}">${xml(l)}</tspan>`).join('')}</text>`);
  });
  out.push(`<line x1="${left}" x2="${W - right}" y1="${y(1).toFixed(1)}" y2="${y(1).toFixed(1)}" stroke="#333" stroke-dasharray="6 4"/>`);
  out.push(`<text x="${W - right}" y="${(y(1) - 5).toFixed(1)}" font-size="11" text-anchor="end" fill="#333">nginx = 1</text>`);
  out.push(`<line x1="${left}" x2="${left}" y1="${plotTop}" y2="${plotBottom}" stroke="#333"/>`);
  out.push(`<line x1="${left}" x2="${W - right}" y1="${plotBottom}" y2="${plotBottom}" stroke="#333"/>`);
  const legendY = H - 60;
  const perLine = 5;
  shown.forEach((r, i) => {
    const lx = left + (i % perLine) * 185;
    const ly = legendY + Math.floor(i / perLine) * 22;
    out.push(`<rect x="${lx}" y="${ly - 11}" width="14" height="14" fill="${PALETTE[i % PALETTE.length]}"/>`);
    out.push(`<text x="${lx + 20}" y="${ly}" font-size="13">${xml(r.name)}</text>`);
  });
  const notRun = rows.filter((r) => r.unavailable && !(opts.skip ?? []).includes(r.name));
  notRun.forEach((r, i) => {
    const text = `Not run: ${r.name}: ${r.unavailable ?? ''}`;
    out.push(`<text x="${left}" y="${H - 14 - (notRun.length - 1 - i) * 15}" font-size="11" fill="#666">${xml(text.length > 150 ? `${text.slice(0, 149)}…` : text)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
