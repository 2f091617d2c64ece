/**
 * ACP response codes (《平台接入接口规范-第5部分-附录》 应答码), the subset this simulator produces.
 * respMsg texts follow the gateway's wording; success carries the internal code suffix the gateway appends.
 */
export const RESP = {
  SUCCESS: { code: '00', msg: '成功[0000000]' },
  FAILED: { code: '01', msg: '交易失败' },
  TIMEOUT: { code: '03', msg: '交易通讯超时，请发起查询交易' },
  UNKNOWN: { code: '04', msg: '交易状态未明，请查询对账结果' },
  ACCEPTED: { code: '05', msg: '交易已受理，请稍后查询交易结果' },
  BAD_FORMAT: { code: '10', msg: '报文格式错误' },
  BAD_SIGNATURE: { code: '11', msg: '验证签名失败' },
  DUPLICATE: { code: '12', msg: '重复交易' },
  MISSING_ELEMENT: { code: '13', msg: '报文交易要素缺失' },
  BAD_MERCHANT: { code: '31', msg: '商户状态不正确' },
  NO_PERMISSION: { code: '32', msg: '无此交易权限' },
  AMOUNT_EXCEEDED: { code: '33', msg: '交易金额超限' },
  NOT_FOUND: { code: '34', msg: '查无此交易' },
  ORIG_INVALID: { code: '35', msg: '原交易不存在或状态不正确' },
  ORIG_MISMATCH: { code: '36', msg: '与原交易信息不符' },
  FILE_NOT_FOUND: { code: '98', msg: '文件不存在' },
} as const;

export type RespCode = (typeof RESP)[keyof typeof RESP];

/** Builds a respMsg with a detail in brackets, as the gateway does (e.g. `报文格式错误[txnAmt]`). */
export function withDetail(resp: RespCode, detail: string): { code: string; msg: string } {
  return { code: resp.code, msg: `${resp.msg}[${detail}]` };
}
