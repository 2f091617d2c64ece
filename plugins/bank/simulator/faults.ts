// The fault set of the common simulator control API (PUT /__sim/faults).
import { z } from 'zod';

export const faultSetSchema = z
  .object({
    latency_ms: z.number().int().min(0).max(600_000).default(0),
    timeout: z.boolean().default(false),
    http_5xx: z.number().int().min(0).default(0),
    connection_reset: z.number().int().min(0).default(0),
    response_lost: z.number().int().min(0).default(0),
    corrupt_signature: z.boolean().default(false),
    notify: z.enum(['normal', 'lost', 'duplicate', 'delayed', 'out_of_order']).default('normal'),
    notify_delay_ms: z.number().int().min(0).max(600_000).default(0),
    tamper_notify_amount: z.boolean().default(false),
    paths: z.array(z.string()).nullable().default(null),
  })
  .strict();

export type FaultSet = z.infer<typeof faultSetSchema>;

export function noFaults(): FaultSet {
  return faultSetSchema.parse({});
}

/** Whether the API faults apply to this request path (`paths` = null means every channel API path). */
export function faultsApplyTo(faults: FaultSet, path: string): boolean {
  return faults.paths === null || faults.paths.some((prefix) => path.startsWith(prefix));
}

export type CountedFault = 'http_5xx' | 'connection_reset' | 'response_lost';

/** Decrements a "next N calls" counter; true if this call takes one. */
export function takeCountedFault(faults: FaultSet, fault: CountedFault): boolean {
  if (faults[fault] <= 0) return false;
  faults[fault] -= 1;
  return true;
}
