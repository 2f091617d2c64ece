/**
 * Every error the API can return, with its HTTP status: the one table that maps internal failures
 * to the wire. Codes are stable; messages are for people.
 */
export const API_ERRORS = {
  invalid_json: 400,
  invalid_request: 400,
  body_too_large: 413,
  unsupported_media_type: 415,
  unknown_pay_method: 400,
  amount_too_large: 400,
  missing_authorization: 401,
  malformed_authorization: 401,
  unknown_app: 401,
  invalid_signature: 401,
  timestamp_out_of_window: 401,
  nonce_reused: 401,
  admin_unauthorized: 401,
  merchant_not_active: 403,
  app_disabled: 403,
  sandbox_only: 403,
  not_found: 404,
  payment_not_found: 404,
  refund_not_found: 404,
  merchant_not_found: 404,
  event_not_found: 404,
  method_not_allowed: 405,
  duplicate_out_trade_no: 409,
  duplicate_out_refund_no: 409,
  idempotency_key_reused: 409,
  idempotency_in_progress: 409,
  invalid_state: 409,
  refund_exceeds_amount: 409,
  risk_rejected: 402,
  no_channel_available: 422,
  channel_declined: 402,
  config_invalid: 422,
  rate_limited: 429,
  channel_error: 502,
  channel_timeout: 504,
  internal_error: 500,
  unavailable: 503,
} as const;

export type ApiErrorCode = keyof typeof API_ERRORS;

export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly param?: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = API_ERRORS[code];
  }

  toJSON(): { error: { code: string; message: string; param: string | null; details?: unknown } } {
    return { error: { code: this.code, message: this.message, param: this.param ?? null, ...(this.details === undefined ? {} : { details: this.details }) } };
  }
}
