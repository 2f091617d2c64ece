// The common simulator fault set (same shape on every channel simulator).
export type NotifyFault = 'normal' | 'lost' | 'duplicate' | 'delayed' | 'out_of_order';

export interface FaultSet {
  latency_ms: number;
  timeout: boolean;
  http_5xx: number;
  connection_reset: number;
  response_lost: number;
  corrupt_signature: boolean;
  notify: NotifyFault;
  notify_delay_ms: number;
  tamper_notify_amount: boolean;
  paths: string[] | null;
}

export function defaultFaults(): FaultSet {
  return {
    latency_ms: 0,
    timeout: false,
    http_5xx: 0,
    connection_reset: 0,
    response_lost: 0,
    corrupt_signature: false,
    notify: 'normal',
    notify_delay_ms: 0,
    tamper_notify_amount: false,
    paths: null,
  };
}

const NOTIFY_VALUES: NotifyFault[] = ['normal', 'lost', 'duplicate', 'delayed', 'out_of_order'];

/** Validates a PUT body; unknown keys are rejected so typos do not silently do nothing. */
export function parseFaults(input: unknown): { faults: FaultSet } | { error: string } {
  if (!input || typeof input !== 'object' || Array.isArray(input)) return { error: 'body must be a JSON object' };
  const faults = defaultFaults();
  const record = input as Record<string, unknown>;
  for (const [key, value] of Object.entries(record)) {
    switch (key) {
      case 'latency_ms': case 'http_5xx': case 'connection_reset': case 'response_lost': case 'notify_delay_ms':
        if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) return { error: `${key} must be a non-negative integer` };
        faults[key] = value;
        break;
      case 'timeout': case 'corrupt_signature': case 'tamper_notify_amount':
        if (typeof value !== 'boolean') return { error: `${key} must be a boolean` };
        faults[key] = value;
        break;
      case 'notify':
        if (!NOTIFY_VALUES.includes(value as NotifyFault)) return { error: `notify must be one of ${NOTIFY_VALUES.join(', ')}` };
        faults.notify = value as NotifyFault;
        break;
      case 'paths':
        if (value !== null && !(Array.isArray(value) && value.every((item) => typeof item === 'string'))) return { error: 'paths must be null or an array of strings' };
        faults.paths = value as string[] | null;
        break;
      default:
        return { error: `unknown fault ${key}` };
    }
  }
  return { faults };
}
