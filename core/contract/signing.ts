// RSA signing off the event loop. node:crypto runs a sign with a callback on libuv's thread pool, so the ~0.3 ms of
// RSA-2048 private-key math per signature no longer blocks the loop that parses, routes and answers other requests.
import { sign, type KeyObject } from 'node:crypto';

/** RSASSA-PKCS1-v1_5 with SHA-256 over `data` (UTF-8 when a string), computed on the thread pool. */
export function rsaSha256Sign(data: string | Buffer, key: KeyObject): Promise<Buffer> {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return new Promise((resolve, reject) => {
    sign('sha256', bytes, key, (err, signature) => (err ? reject(err) : resolve(signature)));
  });
}

/** rsaSha256Sign, as standard base64: the form every channel here puts on the wire. */
export async function rsaSha256SignBase64(data: string | Buffer, key: KeyObject): Promise<string> {
  return (await rsaSha256Sign(data, key)).toString('base64');
}
