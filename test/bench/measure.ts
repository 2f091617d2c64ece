// Timing loops for in-process measurements.

export interface OpTiming {
  ops: number;
  wallMs: number;
  /** User + system CPU of the whole process (every thread, so sqlite's worker threads count too). */
  cpuMs: number;
}

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

/** Runs a synchronous op until at least minMs of wall time and minOps calls have passed. */
export function timeSync(op: () => unknown, minMs: number, minOps = 3): OpTiming {
  const cpu = process.cpuUsage();
  const started = performance.now();
  let ops = 0;
  let elapsed = 0;
  do {
    op();
    ops++;
    elapsed = performance.now() - started;
  } while (elapsed < minMs || ops < minOps);
  return { ops, wallMs: elapsed, cpuMs: cpuMsSince(cpu) };
}

/** Runs an async op sequentially until at least minMs of wall time and minOps calls have passed. */
export async function timeAsync(op: () => Promise<unknown>, minMs: number, minOps = 3): Promise<OpTiming> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  let ops = 0;
  let elapsed = 0;
  do {
    await op();
    ops++;
    elapsed = performance.now() - started;
  } while (elapsed < minMs || ops < minOps);
  return { ops, wallMs: elapsed, cpuMs: cpuMsSince(cpu) };
}

/** Lets signals and timers run between synchronous measurements. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export const opsPerSecond = (t: OpTiming): number => (t.ops * 1000) / t.wallMs;
export const wallMsPerOp = (t: OpTiming): number => t.wallMs / t.ops;
export const cpuMsPerOp = (t: OpTiming): number => t.cpuMs / t.ops;
