/** The fault set shared by all Corbel channel simulators (see simulator-common.md). */
import { z } from 'zod';

export const NOTIFY_MODES = ['normal', 'lost', 'duplicate', 'delayed', 'out_of_order'] as const;

export const faultSchema = z
  .object({
    latency_ms: z.number().int().min(0).default(0),
    timeout: z.boolean().default(false),
    http_5xx: z.number().int().min(0).default(0),
    connection_reset: z.number().int().min(0).default(0),
    response_lost: z.number().int().min(0).default(0),
    corrupt_signature: z.boolean().default(false),
    notify: z.enum(NOTIFY_MODES).default('normal'),
    notify_delay_ms: z.number().int().min(0).default(0),
    tamper_notify_amount: z.boolean().default(false),
    paths: z.array(z.string()).nullable().default(null),
  })
  .strict();

export type FaultSet = z.infer<typeof faultSchema>;

export function defaultFaults(): FaultSet {
  return faultSchema.parse({});
}

/** Whether API faults apply to `path` (never to the /__sim control paths). */
export function faultsApplyTo(faults: FaultSet, path: string): boolean {
  if (path.startsWith('/__sim')) return false;
  if (faults.paths === null) return true;
  return faults.paths.some((prefix) => path.startsWith(prefix));
}
