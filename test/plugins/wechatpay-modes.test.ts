/** Service-provider mode, WeChat Pay public-key mode, the migration (both accepted) and lazy certificate refresh. */
import test from 'ava';
import { ChannelError, type CreatePaymentRequest, type MerchantBinding, type PaymentReference } from '../../core/index.js';
import plugin from '../../plugins/wechatpay/index.js';
import { chinaToday, orderNo, sleep, startHarness, type Harness } from './wechatpay.helpers.js';

let h: Harness;
const DIRECT_MCHID = '1900000001';

test.before(async () => { h = await startHarness(); });
test.after.always(async () => { await h?.close(); });
test.afterEach.always(async () => {
  await h.simApi('DELETE', '/__sim/faults');
  await h.simApi('PUT', `/__sim/merchants/${DIRECT_MCHID}/verification-mode`, { mode: 'platform_certificate' });
});

function request(no: string, path: string, binding?: MerchantBinding, payMethod = 'wechat.native', payer: CreatePaymentRequest['payer'] = {}): CreatePaymentRequest {
  return {
    createdAt: new Date(), paymentId: `pay_${no}`, channelOrderNo: no, amount: 2000, currency: 'CNY', payMethod, subject: 'modes',
    expiresAt: new Date(Date.now() + 600_000), notifyUrl: `${h.receiver.url}${path}`, payer, binding,
  };
}
const ref = (r: CreatePaymentRequest): PaymentReference => ({ channelOrderNo: r.channelOrderNo, amount: r.amount, currency: 'CNY', payMethod: r.payMethod, createdAt: new Date(), binding: r.binding });

test.serial('sandbox.accountConfig maps the identities', (t) => {
  const direct = plugin.sandbox!.accountConfig(h.sim.credentials, undefined);
  t.like(direct, { mode: 'direct', mchid: DIRECT_MCHID, appid: 'wx8888888888888888', platform_certificates: 'fetch', base_url: h.sim.url });
  t.is(direct.public_key_id, undefined);
  const sp = plugin.sandbox!.accountConfig(h.sim.credentials, 'service_provider');
  t.like(sp, { mode: 'service_provider', mchid: '1900000100', appid: 'wx8888888888888100', sub_mchid: '1900000109' });
  const pk = plugin.sandbox!.accountConfig(h.sim.credentials, 'public_key');
  t.like(pk, { mode: 'direct', platform_certificates: 'off' });
  t.regex(pk.public_key_id!, /^PUB_KEY_ID_/);
  t.like(plugin.sandbox!.accountConfig(h.sim.credentials, 'migration'), { platform_certificates: 'fetch' });
});

test.serial('service provider: partner endpoints with the default sub_mchid, end to end', async (t) => {
  const account = await h.account('service_provider');
  const path = '/notify/sp';
  const req = request(orderNo('S'), path);
  const created = await account.createPayment(req);
  t.is(created.action?.type, 'qr_code');
  await account.simulatePayer!(ref(req), 'pay');
  const { parsed } = await h.receiver.waitFor(account, path, (n) => n.kind === 'payment' && n.channelOrderNo === req.channelOrderNo);
  t.like(parsed, { amount: 2000, result: { status: 'succeeded' } });
  t.like(await account.queryPayment(ref(req)), { status: 'succeeded', paidAmount: 2000 });

  const refundNo = orderNo('R');
  await account.refund({ createdAt: new Date(), refundId: 'r', channelRefundNo: refundNo, payment: ref(req), amount: 500, notifyUrl: `${h.receiver.url}${path}` });
  const note = await h.receiver.waitFor(account, path, (n) => n.kind === 'refund' && n.channelRefundNo === refundNo);
  t.like(note.parsed, { amount: 500, result: { status: 'succeeded' } });
  t.is((await account.queryRefund({ createdAt: new Date(), channelRefundNo: refundNo, payment: ref(req), amount: 500 })).status, 'succeeded');

  const app = await account.createPayment(request(orderNo('S'), path, undefined, 'wechat.app'));
  t.like(app.action, { type: 'app', params: { appid: 'wx8888888888888100', partnerid: '1900000109' } });

  const toClose = request(orderNo('S'), path, { subMerchantId: '1900000109', params: {} });
  await account.createPayment(toClose);
  await account.closePayment(ref(toClose));
  t.is((await account.queryPayment(ref(toClose))).status, 'closed');

  const lines = await account.downloadStatement!(chinaToday());
  t.truthy(lines.find((l) => l.kind === 'payment' && l.channelOrderNo === req.channelOrderNo && l.amount === 2000));
});

test.serial('service provider: a sub-merchant that is not ours → NO_AUTH, mayExist false', async (t) => {
  const account = await h.account('service_provider');
  const err = await t.throwsAsync(account.createPayment(request(orderNo('N'), '/n', { subMerchantId: '1900000999', params: {} })), { instanceOf: ChannelError });
  t.like(err, { code: 'authentication_failed', mayExist: false });
});

test.serial('public-key mode: answers and notifications verify with the WeChat Pay public key; platform-only accounts refuse them', async (t) => {
  const platformOnly = await h.account();
  await h.simApi('PUT', `/__sim/merchants/${DIRECT_MCHID}/verification-mode`, { mode: 'public_key' });
  const pk = await h.account('public_key');
  // A platform-only config cannot even trust the certificate download once the merchant has moved to the public key.
  t.like(await t.throwsAsync(h.account(), { instanceOf: ChannelError }), { code: 'signature_invalid' });
  const path = '/notify/pk';
  const req = request(orderNo('K'), path);
  t.is((await pk.createPayment(req)).status, 'pending');
  const refused = await t.throwsAsync(platformOnly.queryPayment(ref(req)), { instanceOf: ChannelError });
  t.like(refused, { code: 'signature_invalid', mayExist: true });

  await pk.simulatePayer!(ref(req), 'pay');
  const { parsed, raw } = await h.receiver.waitFor(pk, path, (n) => n.kind === 'payment');
  t.regex(String(raw.headers['wechatpay-serial']), /^PUB_KEY_ID_/);
  t.like(parsed, { channelOrderNo: req.channelOrderNo, amount: 2000 });
  t.like(await t.throwsAsync(platformOnly.parseNotification(raw), { instanceOf: ChannelError }), { code: 'signature_invalid' });
  t.true((await pk.health()).ok);
});

test.serial('migration: one account accepts both platform-certificate and public-key signatures', async (t) => {
  const both = await h.account('migration');
  const req = request(orderNo('M'), '/notify/mig');
  await both.createPayment(req);
  await h.simApi('PUT', `/__sim/merchants/${DIRECT_MCHID}/verification-mode`, { mode: 'public_key' });
  t.is((await both.queryPayment(ref(req))).status, 'pending');
  await h.simApi('PUT', `/__sim/merchants/${DIRECT_MCHID}/verification-mode`, { mode: 'platform_certificate' });
  t.is((await both.queryPayment(ref(req))).status, 'pending');
});

test.serial('platform certificates unreachable at start-up are downloaded on the first unknown serial', async (t) => {
  await h.simApi('PUT', '/__sim/faults', { connection_reset: 1, paths: ['/v3/certificates'] });
  const account = await h.account();
  t.false((await account.health()).ok);
  await sleep(1100);
  t.is((await account.createPayment(request(orderNo('L'), '/n'))).status, 'pending');
  t.true((await account.health()).ok);
});

test.serial('micropay: MD5-signed APIv2 calls, and the partner form (sub_mch_id) in service-provider mode', async (t) => {
  const md5 = await h.account(undefined, { configure: (c) => ({ ...c, micropay_sign_type: 'MD5' }) });
  const payer = { auth_code: '134111111111111111', client_ip: '10.0.0.9' };
  t.like(await md5.createPayment(request(orderNo('V'), '/n', undefined, 'wechat.micropay', payer)), { status: 'succeeded', paidAmount: 2000 });
  const sp = await h.account('service_provider');
  const req = request(orderNo('V'), '/n', undefined, 'wechat.micropay', { ...payer, auth_code: '131111111111111111' });
  t.is((await sp.createPayment(req)).status, 'pending');
  await sp.simulatePayer!(ref(req), 'pay');
  t.like(await sp.queryPayment(ref(req)), { status: 'succeeded', paidAmount: 2000 });
  const noKey = await h.account(undefined, { configure: (c) => ({ ...c, api_v2_key: undefined }) });
  t.like(await t.throwsAsync(noKey.createPayment(request(orderNo('V'), '/n', undefined, 'wechat.micropay', payer)), { instanceOf: ChannelError }), { code: 'not_supported', mayExist: false });
});
