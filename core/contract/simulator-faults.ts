/**
 * The fault set every channel simulator accepts on `PUT /__sim/faults`. The reliability tests drive all simulators
 * with the same body, so its shape, defaults and validation live here; what a fault looks like on the wire
 * (a channel's 5xx answer, how a notification is corrupted) stays with each simulator.
 */
import { z } from 'zod';

export const NOTIFY_FAULTS = ['normal', 'lost', 'duplicate', 'delayed', 'out_of_order'] as const;
export type NotifyFault = (typeof NOTIFY_FAULTS)[number];

// setTimeout fires at once for delays beyond 2^31-1 ms, and ten minutes already outlasts every client timeout.
const MAX_DELAY_MS = 600_000;

const COUNT = 'must be a non-negative integer';
const count = () => z.number({ invalid_type_error: COUNT }).int(COUNT).min(0, COUNT).default(0);
const delayMs = () => z.number({ invalid_type_error: COUNT }).int(COUNT).min(0, COUNT).max(MAX_DELAY_MS, `must be at most ${MAX_DELAY_MS}`).default(0);
const flag = () => z.boolean({ invalid_type_error: 'must be a boolean' }).default(false);
const PATHS = 'must be null or an array of strings';

export const faultSetSchema = z
  .object(
    {
      latency_ms: delayMs(),
      timeout: flag(),
      http_5xx: count(),
      connection_reset: count(),
      response_lost: count(),
      corrupt_signature: flag(),
      notify: z.enum(NOTIFY_FAULTS, { errorMap: () => ({ message: `must be one of ${NOTIFY_FAULTS.join(', ')}` }) }).default('normal'),
      notify_delay_ms: delayMs(),
      tamper_notify_amount: flag(),
      paths: z.array(z.string({ invalid_type_error: PATHS }), { invalid_type_error: PATHS }).nullable().default(null),
    },
    {
      errorMap: (issue, ctx) => {
        if (issue.code === 'unrecognized_keys') return { message: `unknown fault ${issue.keys.join(', ')}` };
        if (issue.code === 'invalid_type') return { message: 'fault set must be a JSON object' };
        return { message: ctx.defaultError };
      },
    },
  )
  // A misspelt fault would otherwise be dropped and the test would pass without the fault it meant to inject.
  .strict();

export type FaultSet = z.infer<typeof faultSetSchema>;

export type CountedFault = 'http_5xx' | 'connection_reset' | 'response_lost';

export function defaultFaults(): FaultSet {
  return faultSetSchema.parse({});
}

/** The fault set a PUT body describes (absent fields take their defaults), or why it is invalid. */
export function parseFaults(input: unknown): FaultSet | string {
  const result = faultSetSchema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  return issue.path.length > 0 ? `${issue.path[0]} ${issue.message}` : issue.message;
}

/** Whether the API faults hit `path`: `paths` null means every channel API path; the control API is never hit. */
export function faultsApplyTo(faults: FaultSet, path: string): boolean {
  if (path.startsWith('/__sim')) return false;
  return faults.paths === null || faults.paths.some((prefix) => path.startsWith(prefix));
}

/** Takes one call from a "next N calls" counter; true if this call gets the fault. */
export function takeCountedFault(faults: FaultSet, fault: CountedFault): boolean {
  if (faults[fault] <= 0) return false;
  faults[fault] -= 1;
  return true;
}

/** Options every channel simulator's start function takes; a simulator may add its own on top. */
export interface SimulatorBaseOptions {
  /** Key material is generated on first run into `${dataDir}/simulators/<channel>/` and reused after. */
  dataDir: string;
  host?: string;
  port?: number;
  /** Notification retry schedule: each simulator defaults to a compressed copy of its channel's real one. */
  notifyRetryDelaysMs?: number[];
  log?: (line: Record<string, unknown>) => void;
}
