/**
 * The APIv2 XML protocol, used only by `/pay/micropay` (付款码): flat `<xml>` documents signed with the APIv2 key.
 * Signature: sort the non-empty fields except `sign` by key, join as `k=v&…`, append `&key=<APIv2 key>`, then
 * MD5 (default) or HMAC-SHA256 keyed with the APIv2 key; uppercase hex.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export type V2SignType = 'MD5' | 'HMAC-SHA256';

export function v2SigningString(fields: Record<string, string | undefined>, key: string): string {
  const parts = Object.keys(fields)
    .filter((k) => k !== 'sign' && fields[k] !== undefined && fields[k] !== '')
    .sort()
    .map((k) => `${k}=${fields[k]}`);
  return `${parts.join('&')}&key=${key}`;
}

export function v2Sign(fields: Record<string, string | undefined>, key: string, type: V2SignType): string {
  const text = v2SigningString(fields, key);
  const digest = type === 'MD5' ? createHash('md5').update(text, 'utf8') : createHmac('sha256', key).update(text, 'utf8');
  return digest.digest('hex').toUpperCase();
}

export function v2Verify(fields: Record<string, string>, key: string, type: V2SignType): boolean {
  const given = fields.sign;
  if (!given) return false;
  const expected = Buffer.from(v2Sign(fields, key, type));
  const actual = Buffer.from(given.toUpperCase());
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

const CDATA_END = /]]>/g;

/** `<xml><k><![CDATA[v]]></k>…</xml>`; a `]]>` inside a value is split across two CDATA sections. */
export function toXml(fields: Record<string, string | undefined>): string {
  let out = '<xml>';
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    out += `<${k}><![CDATA[${v.replace(CDATA_END, ']]]]><![CDATA[>')}]]></${k}>`;
  }
  return `${out}</xml>`;
}

const ELEMENT = /<([A-Za-z_][\w.-]*)>((?:<!\[CDATA\[[\s\S]*?\]\]>)+|[^<]*)<\/\1>/g;
const CDATA = /<!\[CDATA\[([\s\S]*?)\]\]>/g;
const ENTITIES: Record<string, string> = { '&lt;': '<', '&gt;': '>', '&amp;': '&', '&quot;': '"', '&apos;': "'" };
const ENTITY = /&(?:lt|gt|amp|quot|apos);/g;
const DOCUMENT = /^\s*(?:<\?xml[^>]*\?>\s*)?<xml>([\s\S]*)<\/xml>\s*$/;

/** Parses the flat XML WeChat's APIv2 answers with; returns null when it is not an `<xml>` document. */
export function parseXml(text: string): Record<string, string> | null {
  const body = DOCUMENT.exec(text);
  if (!body) return null;
  const fields: Record<string, string> = {};
  for (const m of body[1]!.matchAll(ELEMENT)) {
    const raw = m[2]!;
    fields[m[1]!] = raw.startsWith('<![CDATA[') ? [...raw.matchAll(CDATA)].map((c) => c[1]).join('') : raw.replace(ENTITY, (e) => ENTITIES[e]!);
  }
  return fields;
}
