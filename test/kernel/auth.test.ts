import test from 'ava';
import { createHmac } from 'node:crypto';
import { startGateway, activeMerchant, MerchantClient, type TestGateway } from '../helpers/gateway.js';

let env: TestGateway;
let hmac: MerchantClient;
let rsa: MerchantClient;

test.before(async () => {
  env = await startGateway();
  hmac = await MerchantClient.for(env.gw, await activeMerchant(env.gw, { auth: 'hmac' }));
  rsa = await MerchantClient.for(env.gw, await activeMerchant(env.gw, { auth: 'rsa' }));
});
test.after.always(async () => env?.close());

const body = { out_trade_no: 'A1', amount: 100, pay_method: 'fixture.qr' };

test('a correctly signed HMAC request and RSA request are accepted, and responses are signed', async (t) => {
  const a = await hmac.request('GET', '/v1/payments?out_trade_no=nope');
  t.is(a.status, 404);
  t.is(a.json.error.code, 'payment_not_found');
  t.true(a.signatureValid);
  const b = await rsa.request('POST', '/v1/payments', { ...body, out_trade_no: 'rsa-ok' });
  t.is(b.status, 201, b.text);
  t.true(b.signatureValid);
});

test('missing Authorization is 401 missing_authorization', async (t) => {
  const res = await fetch(env.gw.url + '/v1/payments/pay_x');
  t.is(res.status, 401);
  t.is(((await res.json()) as any).error.code, 'missing_authorization');
});

test('malformed Authorization is 401 malformed_authorization', async (t) => {
  const res = await fetch(env.gw.url + '/v1/payments/pay_x', { headers: { authorization: 'CORBEL-HMAC-SHA256 garbage' } });
  t.is(res.status, 401);
  t.is(((await res.json()) as any).error.code, 'malformed_authorization');
});

test('unknown app is 401 unknown_app', async (t) => {
  const res = await hmac.request('GET', '/v1/payments/pay_x', undefined, { auth: { appId: 'app_doesnotexist' } });
  t.is(res.status, 401);
  t.is(res.json.error.code, 'unknown_app');
  t.is(res.json.error.param, 'app_id');
});

test('bad signature is 401 invalid_signature, and a body changed after signing is caught', async (t) => {
  const forged = await hmac.request('GET', '/v1/payments/pay_x', undefined, { auth: { signature: Buffer.from('x'.repeat(32)).toString('base64') } });
  t.is(forged.status, 401);
  t.is(forged.json.error.code, 'invalid_signature');
  const text = JSON.stringify({ ...body, out_trade_no: 'tamper' });
  const auth = hmac.authorization('POST', '/v1/payments', text);
  const res = await fetch(env.gw.url + '/v1/payments', { method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' }, body: text.replace('100', '1') });
  t.is(res.status, 401);
  t.is(((await res.json()) as any).error.code, 'invalid_signature');
  const rsaForged = await rsa.request('GET', '/v1/payments/pay_x', undefined, { auth: { signature: 'AAAA' } });
  t.is(rsaForged.json.error.code, 'invalid_signature');
});

test('a timestamp more than 300 s off is 401 timestamp_out_of_window, both directions', async (t) => {
  for (const delta of [-301, 301]) {
    const res = await hmac.request('GET', '/v1/payments/pay_x', undefined, { auth: { timestamp: String(Math.floor(Date.now() / 1000) + delta) } });
    t.is(res.status, 401);
    t.is(res.json.error.code, 'timestamp_out_of_window');
  }
  const ok = await hmac.request('GET', '/v1/payments/pay_x', undefined, { auth: { timestamp: String(Math.floor(Date.now() / 1000) - 250) } });
  t.is(ok.status, 404);
});

test('a nonce reused inside the window is 401 nonce_reused, even with a fresh signature', async (t) => {
  const nonce = 'nonce-reuse-0001';
  const first = await hmac.request('GET', '/v1/payments/pay_x', undefined, { auth: { nonce } });
  t.is(first.status, 404);
  const second = await hmac.request('GET', '/v1/payments/pay_y', undefined, { auth: { nonce } });
  t.is(second.status, 401);
  t.is(second.json.error.code, 'nonce_reused');
});

test.serial('a replayed nonce is still refused after a gateway restart', async (t) => {
  const nonce = 'nonce-restart-0001';
  t.is((await hmac.request('GET', '/v1/payments/pay_x', undefined, { auth: { nonce } })).status, 404);
  env = await env.restart();
  const client = new MerchantClient(env.gw.url, hmac.creds, (hmac as any).gatewayPublicKey);
  hmac = client;
  rsa = new MerchantClient(env.gw.url, rsa.creds, (rsa as any).gatewayPublicKey);
  const replay = await client.request('GET', '/v1/payments/pay_x', undefined, { auth: { nonce } });
  t.is(replay.json.error.code, 'nonce_reused');
});

test('the HMAC scheme with an RSA app is refused', async (t) => {
  const text = '';
  const ts = Math.floor(Date.now() / 1000);
  const res = await fetch(env.gw.url + '/v1/payments/pay_x', { headers: { authorization: `CORBEL-HMAC-SHA256 app_id="${rsa.creds.appId}",timestamp="${ts}",nonce="abcdefgh12",signature="AAAA"` } });
  t.is(res.status, 401);
  t.is(((await res.json()) as any).error.code, 'invalid_signature');
  void text;
});

test('the gateway public key is served unauthenticated', async (t) => {
  const res = await fetch(env.gw.url + '/v1/gateway/keys');
  t.is(res.status, 200);
  const json = (await res.json()) as any;
  t.regex(json.keys[0].public_key, /BEGIN PUBLIC KEY/);
});

test('the signature covers the raw body bytes, not their decoding', async (t) => {
  const bytes = Buffer.concat([Buffer.from('{"out_trade_no":"raw-bytes","amount":100,"pay_method":"fixture.qr","subject":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')]);
  const ts = Math.floor(Date.now() / 1000).toString();
  const signWith = (body: Buffer, nonce: string) => {
    const signed = Buffer.concat([Buffer.from(`POST\n/v1/payments\n${ts}\n${nonce}\n`), body, Buffer.from('\n')]);
    const sig = createHmac('sha256', hmac.creds.secret!).update(signed).digest('base64');
    return `CORBEL-HMAC-SHA256 app_id="${hmac.creds.appId}",timestamp="${ts}",nonce="${nonce}",signature="${sig}"`;
  };
  const decodedThenSigned = await fetch(env.gw.url + '/v1/payments', { method: 'POST', body: bytes, headers: { 'content-type': 'application/json', authorization: signWith(Buffer.from(bytes.toString('utf8')), 'raw-bytes-001') } });
  t.is(decodedThenSigned.status, 401, 'a signature over the decoded text does not cover other bytes');
  const exact = await fetch(env.gw.url + '/v1/payments', { method: 'POST', body: bytes, headers: { 'content-type': 'application/json', authorization: signWith(bytes, 'raw-bytes-002') } });
  t.is(exact.status, 201);
});
