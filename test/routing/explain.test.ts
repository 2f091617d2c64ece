import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { startGateway, fixtureConfig, admin, type TestGateway } from '../helpers/gateway.js';

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
  t.deepEqual((await explain(`pay_method=wechat.native&amount=5&client_ip=${encodeURIComponent('2001:db8::1')}`)).json.input.regions, null);
  t.deepEqual(region.json.warnings, []);
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
  const unknown = await cli(['--pay-method', 'wechat.native', '--amount', '5', '--merchant', 'mch_nobody']);
  t.is(unknown.code, 0, unknown.stderr);
  t.regex(unknown.stdout, /note: merchant mch_nobody is not in the store/);
});
