/** Field checks of ACP 5.1.0 requests. Missing field → 13 报文交易要素缺失, malformed → 10 报文格式错误. */
import { RESP, withDetail } from './codes.js';
import type { AcpFields } from './signing.js';
import { parseTxnTime } from './time.js';

export interface FieldRule {
  field: string;
  required: boolean;
  pattern?: RegExp;
  allowed?: readonly string[];
  /** Compared case-insensitively (the SDKs send encoding as `UTF-8` or `utf-8`). */
  caseInsensitive?: boolean;
}

export interface RespError {
  code: string;
  msg: string;
}

const URL_PATTERN = /^https?:\/\/[^\s]+$/;

export const RULES = {
  version: { field: 'version', required: true, allowed: ['5.1.0'] },
  encoding: { field: 'encoding', required: true, allowed: ['utf-8'], caseInsensitive: true },
  signMethod: { field: 'signMethod', required: true, allowed: ['01'] },
  certId: { field: 'certId', required: true, pattern: /^\d{1,40}$/ },
  signature: { field: 'signature', required: true, pattern: /^[A-Za-z0-9+/=]+$/ },
  txnType: { field: 'txnType', required: true, pattern: /^\d{2}$/ },
  txnSubType: { field: 'txnSubType', required: true, pattern: /^\d{2}$/ },
  bizType: { field: 'bizType', required: true, pattern: /^\d{6}$/ },
  accessType: { field: 'accessType', required: true, allowed: ['0'] },
  merId: { field: 'merId', required: true, pattern: /^[0-9A-Za-z]{15}$/ },
  orderId: { field: 'orderId', required: true, pattern: /^[0-9A-Za-z]{8,40}$/ },
  txnTime: { field: 'txnTime', required: true, pattern: /^\d{14}$/ },
  txnAmt: { field: 'txnAmt', required: true, pattern: /^[1-9]\d{0,11}$/ },
  currencyCode: { field: 'currencyCode', required: true, allowed: ['156'] },
  optionalCurrencyCode: { field: 'currencyCode', required: false, allowed: ['156'] },
  channelType: { field: 'channelType', required: true, allowed: ['07', '08'] },
  backUrl: { field: 'backUrl', required: true, pattern: URL_PATTERN },
  frontUrl: { field: 'frontUrl', required: false, pattern: URL_PATTERN },
  origQryId: { field: 'origQryId', required: true, pattern: /^[0-9A-Za-z]{1,21}$/ },
  consumeBizType: { field: 'bizType', required: true, allowed: ['000201', '000202', '000000', '000301', '000302'] },
  knownBizType: { field: 'bizType', required: true, allowed: ['000000', '000201', '000202', '000301', '000302'] },
  fileBizType: { field: 'bizType', required: true, allowed: ['000000'] },
  fileType: { field: 'fileType', required: true, allowed: ['00'] },
  settleDate: { field: 'settleDate', required: true, pattern: /^(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$/ },
} as const satisfies Record<string, FieldRule>;

export function checkFields(fields: AcpFields, rules: readonly FieldRule[]): RespError | null {
  for (const rule of rules) {
    const value = fields[rule.field];
    if (value === undefined || value === '') {
      if (rule.required) return withDetail(RESP.MISSING_ELEMENT, rule.field);
      continue;
    }
    const compared = rule.caseInsensitive ? value.toLowerCase() : value;
    if (rule.allowed && !rule.allowed.includes(compared)) return withDetail(RESP.BAD_FORMAT, rule.field);
    if (rule.pattern && !rule.pattern.test(value)) return withDetail(RESP.BAD_FORMAT, rule.field);
    if (rule.field === 'txnTime' && parseTxnTime(value) === null) return withDetail(RESP.BAD_FORMAT, rule.field);
  }
  return null;
}
