import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { startGateway, fixtureConfig, admin, activeMerchant, MerchantClient, type TestGateway } from '../helpers/gateway.js';

const exec = promisify(execFile);

/** Two fixture accounts (fixture.qr, wechat.native, alipay.qr); rules on metadata, a region and a merchant tag. */
const config = fixtureConfig(`  promo_acct:
    plugin: fixture
    sandbox: true
    config: { secret: promo-secret-1 }
routing:
  regions: { shanghai: [101.80.0.0/13] }
  rules:
    - name: campaign
      match: { metadata: { campaign: "a=b" } }
      targets: [promo_acct]
    - name: proto
      match: { metadata: { toString: "*" } }
      targets: [promo_acct]
    - name: shanghai
      match: { payer_region: shanghai }
      targets: [promo_acct, fixture_main]
    - name: vip
      match: { merchant_tag: vip }
      targets: [promo_acct]
`);

let env: TestGateway;
test.before(async () => {
  env = await startGateway(config);
});
test.after.always(async () => {
  await env?.close();
});

const explain = (query: string) => admin(env.gw, 'GET', `/admin/routing/explain?${query}`);

/** `corbel route explain` against the running gateway's config and store. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [join(process.cwd(), 'bin/corbel'), '--config', env.configPath, 'route', 'explain', ...args], { env: { ...process.env, CORBEL_DATA_DIR: join(env.dir, 'data') } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('admin explain: malformed or repeated parameters are a 400 naming the parameter, never a 500 or an echoed array', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['pay_method=alipay.qr&amount=5&client_ip=1.1.1.1&client_ip=2.2.2.2', 'client_ip', /^client_ip: give it once/],
    ['pay_method=alipay.qr&pay_method=wechat.native&amount=5', 'pay_method', /^pay_method: give it once/],
    ['pay_method=alipay.qr&amount=5&merchant=m1&merchant=m2', 'merchant', /^merchant: give it once/],
    ['pay_method=alipay.qr&amount=5&amount=6', 'amount', /^amount: give it once/],
    ['pay_method=alipay.qr&amount=1e3', 'amount', /^amount: must be a positive integer of minor units \(fen\)/],
    ['pay_method=alipay.qr&amount=0x10', 'amount', /^amount: must be a positive integer/],
    ['pay_method=alipay.qr&amount=-1', 'amount', /^amount: must be a positive integer/],
    ['pay_method=alipay.qr&amount=5.0', 'amount', /^amount: must be a positive integer/],
    ['pay_method=alipay.qr&amount=', 'amount', /^amount: must be a positive integer/],
    ['pay_method=alipay.qr', 'amount', /^amount: required/],
    ['amount=5', 'pay_method', /^pay_method: required/],
    ['pay_method=alipay.qr&amount=5&client_ip=999.1.1.1', 'client_ip', /^client_ip: must be an IP address/],
    [`pay_method=alipay.qr&amount=5&client_ip=${encodeURIComponent('::ffff:10.0.0.1%eth0')}`, 'client_ip', /^client_ip: must be an IP address/],
    ['pay_method=alipay.qr&amount=5&currency=usd', 'currency', /^currency: must be an ISO 4217 code/],
    ['pay_method=alipay.qr&amount=5&currency=USD', 'currency', /^currency: USD is not enabled \(api.currencies: CNY\)/],
    ['pay_method=alipay.qr&amount=5&metadata=novalue', 'metadata', /^metadata: "novalue" is not key=value/],
    ['pay_method=alipay.qr&amount=5&metadata==x', 'metadata', /^metadata: "=x" is not key=value/],
    ['pay_method=alipay.qr&amount=5&paymethod=x', 'paymethod', /^unknown field\(s\): paymethod/],
  ];
  for (const [query, param, message] of cases) {
    const res = await explain(query);
    t.is(res.status, 400, `${query}: ${JSON.stringify(res.json)}`);
    t.is(res.json.error.code, 'invalid_request', query);
    t.is(res.json.error.param, param, query);
    t.regex(res.json.error.message, message, query);
  }
  const unknown = await explain('pay_method=unionpay.qr&amount=5');
  t.is(unknown.status, 400);
  t.deepEqual(unknown.json.error, { code: 'unknown_pay_method', message: 'pay_method: no configured channel serves unionpay.qr', param: 'pay_method' });
  const tooLarge = await explain('pay_method=alipay.qr&amount=100000001');
  t.is(tooLarge.status, 400);
  t.deepEqual(tooLarge.json.error, { code: 'amount_too_large', message: 'amount: above api.max_amount (100000000), the API would refuse it', param: 'amount' });
});

test('admin explain: amount 0 is refused as the payment API refuses it, metadata is repeated key=value split at the first "=", client_ip picks the region', async (t) => {
  const zero = await explain('pay_method=alipay.qr&amount=0');
  t.is(zero.status, 400, JSON.stringify(zero.json));
  t.like(zero.json.error, { param: 'amount', message: 'amount: must be greater than 0' });
  const campaign = await explain(`pay_method=alipay.qr&amount=5&metadata=${encodeURIComponent('campaign=a=b')}&metadata=ref=1`);
  t.is(campaign.status, 200, JSON.stringify(campaign.json));
  t.like(campaign.json.rule, { name: 'campaign' });
  t.deepEqual(campaign.json.input.metadata, { campaign: 'a=b', ref: '1' });
  t.deepEqual(campaign.json.order, ['promo_acct']);
  t.is((await explain('pay_method=alipay.qr&amount=5&metadata=campaign=a')).json.rule, null, 'a truncated value would not match');
  t.is((await explain('pay_method=alipay.qr&amount=5&metadata=other=1')).json.rule, null, 'the toString rule is not matched by every payment');
  t.like((await explain('pay_method=alipay.qr&amount=5&metadata=toString=')).json.rule, { name: 'proto' });
  const region = await explain('pay_method=wechat.native&amount=5&client_ip=101.81.2.3');
  t.like(region.json.rule, { name: 'shanghai' });
  t.deepEqual(region.json.input.regions, ['shanghai']);
  const mapped = await explain(`pay_method=wechat.native&amount=5&client_ip=${encodeURIComponent('::ffff:101.81.2.3')}`);
  t.deepEqual(mapped.json.input.regions, ['shanghai'], 'an IPv4-mapped IPv6 payer is in its IPv4 address\'s region');
  // The same address in hex (101.81.2.3 is 0x6551_0203), in capitals, uncompressed: the same region and rule.
  for (const spelling of ['::ffff:6551:203', '::FFFF:6551:0203', '0:0:0:0:0:ffff:6551:203']) {
    const hex = await explain(`pay_method=wechat.native&amount=5&client_ip=${encodeURIComponent(spelling)}`);
    t.is(hex.status, 200, JSON.stringify(hex.json));
    t.deepEqual(hex.json.input.regions, ['shanghai'], spelling);
    t.like(hex.json.rule, { name: 'shanghai' }, spelling);
  }
  t.is((await explain(`pay_method=wechat.native&amount=5&client_ip=${encodeURIComponent('::ffff:0:6551:203')}`)).json.input.regions, null, 'IPv4-translated, not mapped: another address');
  t.deepEqual((await explain(`pay_method=wechat.native&amount=5&client_ip=${encodeURIComponent('2001:db8::1')}`)).json.input.regions, null);
  t.deepEqual(region.json.warnings, []);
});

test('a payment routes on payer.client_ip as explain does, whichever spelling of an IPv4-mapped address the payer arrives with', async (t) => {
  const client = await MerchantClient.for(env.gw, await activeMerchant(env.gw));
  // 101.81.2.3 (in shanghai) and 101.88.2.3 (just outside 101.80.0.0/13), as IPv4-mapped IPv6 in hex and dotted forms
  // (the dotted ones after six groups or a `::` that hides one group are valid IPv6 that zod's ip() refused with a 400).
  const cases: Array<[string, string | null]> = [['::ffff:6551:203', 'shanghai'], ['::FFFF:6551:0203', 'shanghai'], ['0:0:0:0:0:ffff:101.81.2.3', 'shanghai'], ['0::ffff:101.81.2.3', 'shanghai'], ['::ffff:6558:203', null], ['101.88.2.3', null]];
  for (const [k, [ip, rule]] of cases.entries()) {
    const created = await client.request('POST', '/v1/payments', { out_trade_no: `region-${k}`, amount: 5, pay_method: 'wechat.native', payer: { client_ip: ip } });
    t.is(created.status, 201, created.text);
    t.is(created.json.routing.rule, rule, ip);
    t.is(created.json.channel_account, rule ? 'promo_acct' : 'fixture_main', ip);
    const stored = await env.gw.store.payments.get(env.gw.store.reads, created.json.id);
    t.is(stored!.routing!.rule, rule, `${ip}: as stored`);
    const explained = await explain(`pay_method=wechat.native&amount=5&merchant=${client.creds.merchantId}&client_ip=${encodeURIComponent(ip)}`);
    t.is(explained.json.rule?.name ?? null, rule, `${ip}: explain agrees`);
  }
});

test('admin explain: a merchant the store does not have is explained anyway, with a warning; a known one brings its tags', async (t) => {
  const unknown = await explain('pay_method=wechat.native&amount=5&merchant=mch_nobody');
  t.is(unknown.status, 200);
  t.deepEqual(unknown.json.warnings, ['merchant mch_nobody is not in the store: explained with no merchant tags and no service-provider bindings (rules on the merchant id, groups and pins still apply)']);
  const created = await admin(env.gw, 'POST', '/admin/merchants', { name: 'VIP shop', tags: ['vip'] });
  const known = await explain(`pay_method=wechat.native&amount=5&merchant=${created.json.id}`);
  t.like(known.json.rule, { name: 'vip' });
  t.deepEqual(known.json.warnings, []);
});

test('corbel route explain: the same checks as the API, worded as flags; metadata split at the first "="; unknown merchants noted', async (t) => {
  const refused: Array<[string[], RegExp]> = [
    [['--pay-method', 'alipay.qr', '--amount', '1e3'], /--amount: must be a positive integer of minor units \(fen\)/],
    [['--pay-method', 'alipay.qr', '--amount', '0x10'], /--amount: must be a positive integer/],
    [['--pay-method', 'alipay.qr', '--amount', ' 5'], /--amount: must be a positive integer/],
    [['--pay-method', 'alipay.qr', '--amount', '5', '--client-ip', '999.1.1.1'], /--client-ip: must be an IP address/],
    [['--pay-method', 'alipay.qr', '--amount', '5', '--currency', 'USD'], /--currency: USD is not enabled \(api.currencies: CNY\)/],
    [['--pay-method', 'alipay.qr', '--amount', '5', '--metadata', 'novalue'], /--metadata: "novalue" is not key=value/],
    [['--pay-method', 'unionpay.qr', '--amount', '5'], /--pay-method: no configured channel serves unionpay\.qr/],
    // Each flag is given once, as each API parameter is: a repeat is refused, not settled by the last value.
    [['--pay-method', 'alipay.qr', '--amount', '1200', '--amount', '5'], /--amount: give it once, as a single value/],
    [['--pay-method', 'alipay.qr', '--pay-method', 'wechat.native', '--amount', '5'], /--pay-method: give it once, as a single value/],
    [['--pay-method', 'alipay.qr', '--amount', '5', '--currency', 'CNY', '--currency', 'CNY'], /--currency: give it once, as a single value/],
    [['--pay-method', 'alipay.qr', '--amount', '5', '--merchant', 'mch_a', '--merchant', 'mch_b'], /--merchant: give it once, as a single value/],
  ];
  for (const [args, message] of refused) {
    const r = await cli(args);
    t.is(r.code, 1, args.join(' '));
    t.regex(r.stderr, message, args.join(' '));
  }
  const campaign = await cli(['--pay-method', 'alipay.qr', '--amount', '5', '--metadata', 'campaign=a=b', '--metadata', 'ref=1,x=2', '--json']);
  t.is(campaign.code, 0, campaign.stderr);
  const out = JSON.parse(campaign.stdout);
  t.like(out.rule, { name: 'campaign' });
  t.deepEqual(out.input.metadata, { campaign: 'a=b', ref: '1', x: '2' });
  const region = JSON.parse((await cli(['--pay-method', 'wechat.native', '--amount', '1', '--client-ip', '101.81.2.3', '--json'])).stdout);
  t.like(region.rule, { name: 'shanghai' });
  // 101.81.2.3 as an IPv4-mapped IPv6 address in hex: the same region, in the JSON and in the text.
  const hex = await cli(['--pay-method', 'wechat.native', '--amount', '1', '--client-ip', '::FFFF:6551:0203', '--json']);
  t.is(hex.code, 0, hex.stderr);
  t.like(JSON.parse(hex.stdout), { rule: { name: 'shanghai' }, input: { regions: ['shanghai'] } });
  const hexText = await cli(['--pay-method', 'wechat.native', '--amount', '1', '--client-ip', '::ffff:6551:203']);
  t.is(hexText.code, 0, hexText.stderr);
  t.regex(hexText.stdout, /rule 2 "shanghai" matched/);
  const unknown = await cli(['--pay-method', 'wechat.native', '--amount', '5', '--merchant', 'mch_nobody']);
  t.is(unknown.code, 0, unknown.stderr);
  t.regex(unknown.stdout, /note: merchant mch_nobody is not in the store/);
});
