// Shared by the benches: command-line flags, progress on stderr, medians and percentiles, plain-text tables.
import { cpus } from 'node:os';

/** `--name` present on the command line. */
export function flag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

/** `--name <number>` or `--name=<number>`, else the default. */
export function numberOption(name: string, fallback: number): number {
  const args = process.argv;
  const inline = args.find((a) => a.startsWith(`--${name}=`));
  const raw = inline ? inline.slice(name.length + 3) : args[args.indexOf(`--${name}`) + 1];
  if (!inline && !args.includes(`--${name}`)) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} needs a positive number, got ${raw}`);
  return value;
}

/** `--name <text>` or `--name=<text>`, else undefined. */
export function stringOption(name: string): string | undefined {
  const args = process.argv;
  const inline = args.find((a) => a.startsWith(`--${name}=`));
  if (inline) return inline.slice(name.length + 3);
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : undefined;
}

/** Progress goes to stderr so that `--json` leaves exactly one JSON object on stdout. */
export function progress(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sortedAscending: readonly number[], p: number): number {
  if (sortedAscending.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sortedAscending.length);
  return sortedAscending[Math.min(sortedAscending.length, Math.max(1, rank)) - 1]!;
}

/** Rounds for display and JSON: 3 significant digits, integers kept whole. */
export function round(value: number): number {
  if (!Number.isFinite(value)) return value;
  if (Math.abs(value) >= 100) return Math.round(value);
  return Number(value.toPrecision(3));
}

export function formatNumber(value: number, suffix = ''): string {
  if (!Number.isFinite(value)) return 'n/a';
  return `${round(value).toLocaleString('en-US', { maximumFractionDigits: 3 })}${suffix}`;
}

/** A Markdown table with padded columns (readable in a terminal, pasteable into a README). */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(headers), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

export function machine(): { node: string; cpus: number; cpu_model: string; platform: string } {
  const list = cpus();
  return { node: process.version, cpus: list.length, cpu_model: list[0]?.model ?? 'unknown', platform: `${process.platform}-${process.arch}` };
}

/**
 * Prints the result: with `--json` exactly one JSON object on stdout (the tables go to stderr),
 * otherwise the tables on stdout.
 */
export function emit(json: boolean, result: unknown, tables: string): void {
  if (json) {
    process.stderr.write(`${tables}\n`);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    process.stdout.write(`${tables}\n`);
  }
}
