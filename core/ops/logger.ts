import { pino, type Logger, type DestinationStream } from 'pino';

/** Field names whose values never reach a log line, wherever they sit in a logged object. */
const SECRET_KEYS = [
  'authorization', 'signature', 'sign', 'secret', 'hmac_secret', 'private_key', 'privateKey', 'private_key_pem',
  'password', 'passphrase', 'token', 'api_key', 'apiv3_key', 'apiV3Key', 'key_pem', 'pfx', 'admin_token', 'card_no', 'accNo',
];

export const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  ...SECRET_KEYS.map((k) => `*.*.${k}`),
  'req.headers.authorization',
  'req.headers["corbel-signature"]',
  'headers.authorization',
  'headers["wechatpay-signature"]',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'corbel' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

export type { Logger };
