// PROTOCOL.md's test vectors, recomputed here with node:crypto alone, then checked against the simulator's signer.
import test from 'ava';
import { createHash, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { baseString, signBase64, verifyBase64 } from '../../plugins/bank/simulator/signing.js';
import { STATEMENT_HEADER, chinaTime, businessDate, feeFen, statementCsv, type Payment, type Refund } from '../../plugins/bank/simulator/model.js';

// dist/test/simulators/ -> repository root
const protocolPath = fileURLToPath(new URL('../../../plugins/bank/simulator/PROTOCOL.md', import.meta.url));
const protocol = readFileSync(protocolPath, 'utf8');

/** The fenced blocks of section 10, in order. */
function vectorBlocks(): string[] {
  const section = protocol.slice(protocol.indexOf('## 10. Test vectors'), protocol.indexOf('## 11.'));
  return [...section.matchAll(/```\n([\s\S]*?)\n```/g)].map((match) => match[1]);
}

const [keyPem, body, bodyHash, requestBase, signature, notifyBase] = vectorBlocks();
const sha256Hex = (data: string) => createHash('sha256').update(data).digest('hex');

test('section 10 has the six vector blocks', (t) => {
  t.is(vectorBlocks().length, 6);
  t.true(keyPem.startsWith('-----BEGIN PRIVATE KEY-----'));
});

test('body digest and request base string, computed independently', (t) => {
  t.is(sha256Hex(body), bodyHash);
  const expectedBase = `POST\n/api/v1/payments\n880000000001\n1741915613\nn0nce4TestVector01\n${sha256Hex(body)}\n`;
  // The document shows the base string without its final \n.
  t.is(`${requestBase}\n`, expectedBase);
  t.is(sha256Hex(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  t.true(protocol.includes('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'));
});

test('request signature: RSA-SHA256 PKCS#1 v1.5 over the base string, deterministic and verifiable', (t) => {
  const privateKey = createPrivateKey(keyPem);
  const publicKey = createPublicKey(privateKey);
  const base = Buffer.from(`${requestBase}\n`, 'utf8');
  t.is(sign('sha256', base, privateKey).toString('base64'), signature);
  t.true(verify('sha256', base, publicKey, Buffer.from(signature, 'base64')));
  t.false(verify('sha256', Buffer.from(requestBase, 'utf8'), publicKey, Buffer.from(signature, 'base64')), 'the final \\n is part of the base string');
});

test('notification base string uses NOTIFY and -', (t) => {
  t.is(`${notifyBase}\n`, `NOTIFY\n-\n880000000001\n1741915613\nn0nce4TestVector01\n${sha256Hex('{"event_id":"EV1"}')}\n`);
});

test("the simulator's signer reproduces the vectors", (t) => {
  const message = { line1: 'POST', line2: '/api/v1/payments', merchantId: '880000000001', timestamp: '1741915613', nonce: 'n0nce4TestVector01', body };
  t.is(baseString(message), `${requestBase}\n`);
  const privateKey = createPrivateKey(keyPem);
  t.is(signBase64(message, privateKey), signature);
  t.true(verifyBase64(message, signature, createPublicKey(privateKey)));
  t.false(verifyBase64({ ...message, body: `${body} ` }, signature, createPublicKey(privateKey)));
  t.false(verifyBase64(message, `${signature}!`, createPublicKey(privateKey)));
  t.is(baseString({ ...message, line1: 'NOTIFY', line2: '-', body: '{"event_id":"EV1"}' }), `${notifyBase}\n`);
});

test('times are RFC 3339 in +08:00 and business dates cut at midnight China time', (t) => {
  const ms = Date.UTC(2025, 2, 14, 1, 26, 53, 999);
  t.is(chinaTime(ms), '2025-03-14T09:26:53+08:00');
  t.is(businessDate(Date.UTC(2025, 2, 13, 15, 59, 59)), '2025-03-13');
  t.is(businessDate(Date.UTC(2025, 2, 13, 16, 0, 0)), '2025-03-14');
});

test('sandbox fee is 0.6 % rounded half up', (t) => {
  t.is(feeFen(12345), 74); // 74.07
  t.is(feeFen(250), 2); // 1.5 -> 2
  t.is(feeFen(83), 0); // 0.498
  t.is(feeFen(84), 1); // 0.504
});

test('statement CSV: header, only SUCCESS movements of the date, ordered, unquoted', (t) => {
  const at = (h: number, m: number) => Date.UTC(2025, 2, 14, h - 8, m, 0);
  const payment = (no: string, amount: number, paidAtMs: number | undefined, status: Payment['status']): Payment => ({
    merchantId: '880000000001',
    request: { out_trade_no: no, amount, currency: 'CNY', subject: 's', scene: 'b2c', notify_url: 'http://x/n' },
    bankTradeNo: `P20250314${no.padStart(10, '0')}`,
    status,
    createdAtMs: at(9, 0),
    expiresAtMs: at(10, 0),
    paidAtMs,
  });
  const p1 = payment('000001', 10000, at(10, 5), 'SUCCESS');
  const p2 = payment('000002', 250, at(9, 30), 'SUCCESS');
  const p3 = payment('000003', 999, undefined, 'CLOSED');
  const p4 = payment('000004', 500, Date.UTC(2025, 2, 14, 16, 0, 0), 'SUCCESS'); // 2025-03-15 00:00 China time
  const refund: Refund = {
    merchantId: '880000000001',
    request: { out_trade_no: '000001', out_refund_no: 'RF0001', amount: 3000 },
    bankTradeNo: p1.bankTradeNo,
    bankRefundNo: 'R202503140000000009',
    notifyUrl: 'http://x/n',
    status: 'SUCCESS',
    createdAtMs: at(11, 0),
    succeededAtMs: at(11, 1),
  };
  const failedRefund: Refund = { ...refund, request: { ...refund.request, out_refund_no: 'RF0002' }, status: 'FAILED', succeededAtMs: undefined };
  const csv = statementCsv('2025-03-14', [p1, p2, p3, p4], [refund, failedRefund]);
  t.is(
    csv,
    [
      STATEMENT_HEADER,
      '2025-03-14T09:30:00+08:00,PAYMENT,000002,P202503140000000002,,,250,2,CNY',
      '2025-03-14T10:05:00+08:00,PAYMENT,000001,P202503140000000001,,,10000,60,CNY',
      '2025-03-14T11:01:00+08:00,REFUND,000001,P202503140000000001,RF0001,R202503140000000009,3000,0,CNY',
      '',
    ].join('\n'),
  );
  t.true(protocol.includes(STATEMENT_HEADER));
  t.is(statementCsv('2025-03-13', [p1], [refund]), `${STATEMENT_HEADER}\n`);
});
