// `corbel config check` and `corbel route explain`: real CLI processes against real config files and data dirs,
// starting with the shipped default config on a fresh checkout (no data dir, simulators never run).
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BROKEN_PLUGIN, MerchantClient, activeMerchant, admin, fixtureConfig, startGateway } from '../helpers/gateway.js';

const exec = promisify(execFile);
const ROOT = process.cwd();
const CLI = join(ROOT, 'bin/corbel');
const DEFAULT_CONFIG = join(ROOT, 'config/corbel.yaml');

/** The environment without any CORBEL_* setting, as on a machine that has only cloned the repo. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CORBEL')));
}

async function corbel(cwd: string, args: string[], env: NodeJS.ProcessEnv = cleanEnv()): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, ...args], { cwd, env });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'corbel-inspect-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('default config, fresh data dir: route explain prints the rule, the accounts in order and why; config check passes; nothing is written', async (t) => {
  const empty = tempDir(t);
  const explain = await corbel(empty, ['-c', DEFAULT_CONFIG, 'route', 'explain', '--pay-method', 'wechat.native', '--amount', '1200', '--merchant', 'm_1']);
  t.is(explain.code, 0, explain.stderr);
  const lines = explain.stdout.split('\n');
  t.is(lines[0], 'rule 0 "wechat" matched (priority); try wechat_sandbox');
  t.is(lines[1], '  ✓ wechat_sandbox: usable');
  t.is(lines[2], '  ✗ wechat_sp_sandbox: service-provider account: the merchant is not bound to it');
  t.regex(explain.stdout, /note: merchant m_1 is not in the store/);
  t.regex(explain.stdout, /note: channels\.wechat_sandbox: pay methods from the wechatpay plugin's manifest; not instantiated: its credentials come from the wechatpay simulator, which `corbel serve` starts/);

  const json = await corbel(empty, ['-c', DEFAULT_CONFIG, 'route', 'explain', '--pay-method', 'alipay.qr', '--amount', '1200', '--json']);
  t.is(json.code, 0, json.stderr);
  const out = JSON.parse(json.stdout);
  t.like(out.rule, { index: 1, name: 'alipay', strategy: 'priority' });
  t.deepEqual(out.order, ['alipay_sandbox']);
  t.like(out.targets[0], { account: 'alipay_sandbox', usable: true, reason: 'usable' });

  const check = await corbel(empty, ['-c', DEFAULT_CONFIG, 'config', 'check']);
  t.is(check.code, 0, check.stdout + check.stderr);
  t.regex(check.stdout, /^config .*corbel\.yaml is valid: 5 channel account\(s\), 0 capability\(ies\)\n/);
  t.notRegex(check.stdout + check.stderr, /simulator is not running/);
  const checked = JSON.parse((await corbel(empty, ['-c', DEFAULT_CONFIG, 'config', 'check', '--json'])).stdout);
  t.true(checked.ok);
  t.deepEqual(checked.problems, []);
  t.deepEqual(checked.warnings.map((w: string) => w.split(':')[0]), ['channels.wechat_sandbox', 'channels.wechat_sp_sandbox', 'channels.alipay_sandbox', 'channels.unionpay_sandbox', 'channels.bank_sandbox']);
  t.deepEqual(readdirSync(empty), [], 'inspecting the config creates no data dir');
});

test('the default config from the repository root, as on a fresh clone: `corbel route explain` with the issue\'s exact arguments', async (t) => {
  // The checkout has no data dir of its own here (it is git-ignored): point it at a fresh one as a clone would have.
  const data = tempDir(t);
  const env = { ...cleanEnv(), CORBEL_DATA_DIR: join(data, 'data') };
  const r = await corbel(ROOT, ['route', 'explain', '--pay-method', 'wechat.native', '--amount', '1200', '--merchant', 'm_1'], env);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^rule 0 "wechat" matched \(priority\); try wechat_sandbox\n/);
  t.deepEqual(readdirSync(data), []);
});

test('a pay method served only by accounts that failed to load for a real reason: explain says so and names them; config check reports them, not the unstarted simulator', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'corbel.yaml'), `mode: sandbox
simulators: { enabled: true }
plugins: { broken: ${BROKEN_PLUGIN} }
channels:
  wechat_typo:
    plugin: wechatpay
    simulator: true          # not a sandbox account: a real error
  alipay_sandbox: { plugin: alipay, sandbox: true, simulator: true }
  alipay_bad:
    plugin: alipay
    sandbox: true
    simulator: true
    config: { seller_id: "123", colour: blue }
  broken_acct: { plugin: broken, config: { reason: "key file unreadable" } }
`);
  const args = ['-c', join(dir, 'corbel.yaml')];
  const env = { ...cleanEnv(), CORBEL_DATA_DIR: join(dir, 'data') };
  const wechat = await corbel(dir, [...args, 'route', 'explain', '--pay-method', 'wechat.native', '--amount', '5'], env);
  t.is(wechat.code, 1);
  t.is(wechat.stderr.trim(), '--pay-method: wechat.native is served only by channel accounts that are not serving: wechat_typo (simulator: only sandbox accounts may use a simulator)');
  const broken = await corbel(dir, [...args, 'route', 'explain', '--pay-method', 'broken.qr', '--amount', '5'], env);
  t.is(broken.code, 1);
  t.is(broken.stderr.trim(), '--pay-method: broken.qr is served only by channel accounts that are not serving: broken_acct (key file unreadable)');
  const unknown = await corbel(dir, [...args, 'route', 'explain', '--pay-method', 'bank.b2c', '--amount', '5'], env);
  t.is(unknown.stderr.trim(), '--pay-method: no configured channel serves bank.b2c');
  const alipay = await corbel(dir, [...args, 'route', 'explain', '--pay-method', 'alipay.qr', '--amount', '5', '--json'], env);
  t.is(alipay.code, 0, alipay.stderr);
  const explained = JSON.parse(alipay.stdout);
  t.deepEqual(explained.order, ['alipay_sandbox']);
  t.deepEqual(explained.targets.map((x: { account: string; reason: string }) => [x.account, x.reason]), [
    ['wechat_typo', 'does not serve this pay method'],
    ['alipay_sandbox', 'usable'],
    ['alipay_bad', "not serving: channels.alipay_bad.config.seller_id: a seller_id is 16 digits starting with 2088; channels.alipay_bad.config: Unrecognized key(s) in object: 'colour'"],
    ['broken_acct', 'does not serve this pay method'],
  ], 'no rule matched: every account serving the pay method, each failed one with its reason');

  const check = await corbel(dir, [...args, 'config', 'check', '--json'], env);
  t.is(check.code, 1);
  const checked = JSON.parse(check.stdout);
  t.false(checked.ok);
  t.deepEqual(checked.problems, [
    'channels.wechat_typo: simulator: only sandbox accounts may use a simulator',
    "channels.alipay_bad: channels.alipay_bad.config.seller_id: a seller_id is 16 digits starting with 2088; channels.alipay_bad.config: Unrecognized key(s) in object: 'colour'",
    'channels.broken_acct: key file unreadable',
  ]);
  t.deepEqual(checked.warnings, [`channels.alipay_sandbox: pay methods from the alipay plugin's manifest; not instantiated: its credentials come from the alipay simulator, which \`corbel serve\` starts (simulators.enabled: true)`]);
});

test('simulators disabled and never run: config check passes with a note to start the simulator first', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'corbel.yaml'), 'mode: sandbox\nchannels:\n  bank_sandbox: { plugin: bank, sandbox: true, simulator: true }\n');
  const check = await corbel(dir, ['-c', join(dir, 'corbel.yaml'), 'config', 'check'], { ...cleanEnv(), CORBEL_DATA_DIR: join(dir, 'data') });
  t.is(check.code, 0, check.stdout + check.stderr);
  t.true(check.stdout.includes(`note: channels.bank_sandbox: pay methods from the bank plugin's manifest; not instantiated: no credentials from the bank simulator yet (${join(dir, 'data', 'simulators', 'bank', 'credentials.json')}); run \`corbel simulate bank\` before \`corbel serve\`, or set simulators.enabled: true`), check.stdout);
});

test('explain says in one line (and a --json field) that its state is offline, points at the live endpoint, and counts daily usage from the store', async (t) => {
  const env = await startGateway(fixtureConfig(`  single:
    plugin: fixture
    sandbox: true
    limits: { daily_count: 1 }
    config: { secret: single-secret-1 }
routing:
  rules:
    - name: single_first
      match: { pay_method: alipay.qr }
      targets: [single, fixture_main]
`));
  t.teardown(() => env.close());
  const client = await MerchantClient.for(env.gw, await activeMerchant(env.gw));
  const paid = await client.request('POST', '/v1/payments', { out_trade_no: 'limit-1', amount: 100, pay_method: 'alipay.qr' });
  t.is(paid.json.channel_account, 'single', JSON.stringify(paid.json));

  const cli = (args: string[]) => corbel(env.dir, ['-c', env.configPath, 'route', 'explain', '--pay-method', 'alipay.qr', '--amount', '100', ...args], { ...cleanEnv(), CORBEL_DATA_DIR: join(env.dir, 'data') });
  const human = await cli(['--merchant', 'mch_x']);
  t.is(human.code, 0, human.stderr);
  t.regex(human.stdout, /^rule 0 "single_first" matched \(priority\); try fixture_main\n {2}✗ single: daily count limit reached\n/, 'today\'s payment on single is counted from the store');
  const notes = human.stdout.split('\n').filter((l) => l.startsWith('note: explained offline'));
  t.deepEqual(notes, ['note: explained offline: breakers shown closed and no success rates (this process saw no channel calls), daily usage counted from the store; the running gateway\'s live state: GET /admin/routing/explain?pay_method=alipay.qr&amount=100&merchant=mch_x (admin token)']);

  const json = JSON.parse((await cli(['--metadata', 'campaign=a=b', '--json'])).stdout);
  t.like(json.state, { live: false, daily_usage: 'counted from the store', live_endpoint: 'GET /admin/routing/explain?pay_method=alipay.qr&amount=100&metadata=campaign%3Da%3Db' });
  t.deepEqual(json.order, ['fixture_main']);
  // The endpoint it names is the real one, and answers the same request with the gateway's live state.
  const live = await admin(env.gw, 'GET', json.state.live_endpoint.slice('GET '.length));
  t.is(live.status, 200, JSON.stringify(live.json));
  t.deepEqual(live.json.order, ['fixture_main']);
  t.deepEqual(live.json.input.metadata, { campaign: 'a=b' });
});

test('--json: route explain and config check print their errors as one JSON object on stdout, with a non-zero exit', async (t) => {
  const dir = tempDir(t);
  const env = { ...cleanEnv(), CORBEL_DATA_DIR: join(dir, 'data') };
  const explain = (config: string, args: string[]) => corbel(dir, ['-c', config, 'route', 'explain', ...args, '--json'], env);
  const json = (r: { stdout: string }) => JSON.parse(r.stdout) as { error: Record<string, unknown> };

  const unknown = await explain(DEFAULT_CONFIG, ['--pay-method', 'bank.nope', '--amount', '5']);
  t.is(unknown.code, 1);
  t.is(unknown.stderr, '');
  t.deepEqual(json(unknown), { error: { code: 'unknown_pay_method', message: '--pay-method: no configured channel serves bank.nope', param: 'pay_method', option: '--pay-method' } });
  const amount = await explain(DEFAULT_CONFIG, ['--pay-method', 'bank.b2c', '--amount', '1e3']);
  t.is(amount.code, 1);
  t.like(json(amount).error, { code: 'invalid_request', param: 'amount', option: '--amount', message: '--amount: must be a positive integer of minor units (fen), digits only' });
  const missing = await explain(DEFAULT_CONFIG, ['--pay-method', 'bank.b2c']);
  t.is(missing.code, 1);
  t.is(missing.stderr, '', 'commander does not print its own text either');
  t.deepEqual(json(missing), { error: { code: 'invalid_usage', message: "required option '--amount <fen>' not specified" } });

  writeFileSync(join(dir, 'routing.yaml'), 'channels:\n  bank_sandbox: { plugin: bank, sandbox: true, simulator: true }\nrouting:\n  rules:\n    - { name: to_nowhere, match: { pay_method: "bank.*" }, targets: [bank_sandbox, bank_gone] }\n');
  const routing = await explain(join(dir, 'routing.yaml'), ['--pay-method', 'bank.b2c', '--amount', '5']);
  t.is(routing.code, 1);
  t.deepEqual(json(routing), { error: { code: 'config_invalid', message: 'invalid config', problems: ['routing.rules.0 (to_nowhere).targets.1: no channel account named bank_gone'] } });
  const noFile = await explain(join(dir, 'absent.yaml'), ['--pay-method', 'bank.b2c', '--amount', '5']);
  t.is(noFile.code, 1);
  t.like(json(noFile).error, { code: 'config_invalid' });

  const check = await corbel(dir, ['-c', join(dir, 'routing.yaml'), 'config', 'check', '--json'], env);
  t.is(check.code, 1);
  t.is(check.stderr, '');
  t.like(JSON.parse(check.stdout), { ok: false, problems: ['routing.rules.0 (to_nowhere).targets.1: no channel account named bank_gone'] });
  const usage = await corbel(dir, ['config', 'check', '--json', '--strict'], env);
  t.is(usage.code, 1);
  t.deepEqual(JSON.parse(usage.stdout), { error: { code: 'invalid_usage', message: "unknown option '--strict'" } });
  const plain = await corbel(dir, ['-c', DEFAULT_CONFIG, 'route', 'explain', '--pay-method', 'bank.nope', '--amount', '5'], env);
  t.is(plain.code, 1);
  t.is(plain.stdout, '');
  t.is(plain.stderr, '--pay-method: no configured channel serves bank.nope\n', 'without --json, plain text on stderr as before');
});

test('config check: routing problems under their own header, apart from plugin problems; schema errors name the rule and say what is expected', async (t) => {
  const dir = tempDir(t);
  const env = { ...cleanEnv(), CORBEL_DATA_DIR: join(dir, 'data') };
  writeFileSync(join(dir, 'corbel.yaml'), `plugins: { broken: ${BROKEN_PLUGIN} }
channels:
  bank_sandbox: { plugin: bank, sandbox: true, simulator: true }
  broken_acct: { plugin: broken }
routing:
  rules:
    - { name: banks, match: { pay_method: "bank.*" }, targets: [bank_sandbox, bank_gone] }
`);
  const check = await corbel(dir, ['-c', join(dir, 'corbel.yaml'), 'config', 'check'], env);
  t.is(check.code, 1);
  t.is(check.stdout, [
    `config ${join(dir, 'corbel.yaml')} is invalid:`,
    'plugin problems:',
    '  channels.broken_acct: init exploded',
    'routing problems:',
    '  routing.rules.0 (banks).targets.1: no channel account named bank_gone',
    `note: channels.bank_sandbox: pay methods from the bank plugin's manifest; not instantiated: no credentials from the bank simulator yet (${join(dir, 'data', 'simulators', 'bank', 'credentials.json')}); run \`corbel simulate bank\` before \`corbel serve\`, or set simulators.enabled: true`,
    '',
  ].join('\n'));
  const json = JSON.parse((await corbel(dir, ['-c', join(dir, 'corbel.yaml'), 'config', 'check', '--json'], env)).stdout);
  t.deepEqual(json.plugin_problems, ['channels.broken_acct: init exploded']);
  t.deepEqual(json.routing_problems, ['routing.rules.0 (banks).targets.1: no channel account named bank_gone']);

  writeFileSync(join(dir, 'schema.yaml'), `routing:
  rules:
    - { name: promo, match: { pay_method: 5 }, targets: [a] }
    - { name: cheap, strategy: cheapest, targets: [a] }
`);
  const schema = await corbel(dir, ['-c', join(dir, 'schema.yaml'), 'config', 'check'], env);
  t.is(schema.code, 1);
  t.is(schema.stdout, [
    'config invalid:',
    '  routing.rules.0 (promo).match.pay_method: expected a pay method such as wechat.native or a prefix ending in * such as wechat.*, or a non-empty list of them',
    '  routing.rules.1 (cheap).strategy: "cheapest" is not a strategy: expected one of priority, weighted, lowest_cost, success_rate',
    '',
  ].join('\n'));
});

test('admin explain, like the CLI: a pay method served only by an account that failed to load names it and why', async (t) => {
  const env = await startGateway(fixtureConfig(`  broken_acct:
    plugin: broken
    config: { reason: "key file unreadable" }
`));
  t.teardown(() => env.close());
  const res = await admin(env.gw, 'GET', '/admin/routing/explain?pay_method=broken.qr&amount=5');
  t.is(res.status, 400);
  t.deepEqual(res.json.error, { code: 'unknown_pay_method', message: 'pay_method: broken.qr is served only by channel accounts that are not serving: broken_acct (key file unreadable)', param: 'pay_method' });
});
