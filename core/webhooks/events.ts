import { newId } from '../crypto/ids.js';
import type { Store, Tx } from '../store/index.js';

export type EventType = 'payment.succeeded' | 'payment.failed' | 'payment.closed' | 'refund.succeeded' | 'refund.failed';

/**
 * Writes an event to the outbox inside the caller's transaction, so the event exists exactly
 * when the state change does. Without a notify URL it is kept as 'no_endpoint' for the record.
 */
export async function enqueueEvent(
  store: Store, tx: Tx,
  e: { type: EventType; merchantId: string; objectId: string; object: unknown; url: string | null; at: number },
): Promise<string> {
  const id = newId('evt');
  const payload = JSON.stringify({ id, type: e.type, created_at: new Date(e.at).toISOString(), data: { object: e.object } });
  await store.webhooks.enqueue(tx, {
    id, merchantId: e.merchantId, type: e.type, objectId: e.objectId, payload, url: e.url,
    status: e.url ? 'pending' : 'no_endpoint', attempts: 0, nextAttemptAt: e.url ? e.at : null, lastError: null, createdAt: e.at, deliveredAt: null,
  });
  return id;
}
