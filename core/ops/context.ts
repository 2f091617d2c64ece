import { AsyncLocalStorage } from 'node:async_hooks';

/** Carries the request id through every log line, channel call and webhook of one request. */
export interface RequestScope {
  requestId: string;
}

export const requestScope = new AsyncLocalStorage<RequestScope>();

export function currentRequestId(): string | undefined {
  return requestScope.getStore()?.requestId;
}
