// channels.<account>.pool through a running gateway: the account's executor is built with it, a reload that changes it
// takes effect as a timeout change does (a new executor in the new snapshot), and invalid values are refused by name.
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { admin, fixtureConfig, startGateway } from '../helpers/gateway.js';
import type { KernelChannelHttp } from '../../core/kernel/channel-http.js';

const withPool = (pool: string) => fixtureConfig().replace('    sandbox: true\n    config:\n      secret: fixture-secret-1', `    sandbox: true\n    timeout_ms: 4000\n    pool: ${pool}\n    config:\n      secret: fixture-secret-1`);

/** A loopback channel stand-in that answers after 50 ms and counts the connections it is reached on, open and closed. */
async function channel(t: { teardown(fn: () => void): void }): Promise<{ url: string; opened: () => number; open: () => number }> {
  const sockets = new Set<Socket>();
  let opened = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    setTimeout(() => res.end('ok'), 50);
  });
  server.on('connection', (s: Socket) => {
    opened++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, opened: () => opened, open: () => sockets.size };
}

async function burst(http: KernelChannelHttp, url: string, n: number): Promise<string[]> {
  const answers = await Promise.all(Array.from({ length: n }, (_, i) => http.send({ method: 'POST', url: `${url}/pay`, body: `{"i":${i}}`, operation: 'create_payment' })));
  return answers.map((a) => a.text);
}

test('an account\'s pool comes from its config; a reload that changes it builds a new executor, the old one closes; bad values are refused by name', async (t) => {
  const env = await startGateway(withPool('{ connections: 2 }'));
  t.teardown(() => env.close());
  const executor = () => env.gw.runtime.current.account('fixture_main')!.http!;
  const before = executor();
  t.deepEqual({ ...before.pool }, { connections: 2, keepAliveMs: 4_000, keepAliveMaxMs: 600_000 });
  const first = await channel(t);
  t.deepEqual(await burst(before, first.url, 6), Array(6).fill('ok'));
  t.is(first.opened(), 2, '6 concurrent calls on the 2 connections configured');

  writeFileSync(env.configPath, withPool('{ connections: 0 }'));
  const zero = await admin(env.gw, 'POST', '/admin/config/reload');
  t.is(zero.status, 422);
  t.deepEqual(zero.json.error.details.problems, ['channels.fixture_main.pool.connections: must be a whole number from 1 to 1024 (connections to each channel origin)']);
  writeFileSync(env.configPath, withPool('{ keep_alive_ms: 5000, keep_alive_max_ms: 1000, idle: 3 }'));
  const inverted = await admin(env.gw, 'POST', '/admin/config/reload');
  t.is(inverted.status, 422);
  t.deepEqual(inverted.json.error.details.problems, [
    "channels.fixture_main.pool: Unrecognized key(s) in object: 'idle'",
    'channels.fixture_main.pool.keep_alive_max_ms: must be at least keep_alive_ms (5000)',
  ]);
  t.is(executor(), before, 'a rejected reload leaves the running executor');

  writeFileSync(env.configPath, withPool('{ connections: 3, keep_alive_ms: 1000 }'));
  const applied = await admin(env.gw, 'POST', '/admin/config/reload');
  t.is(applied.status, 200, JSON.stringify(applied.json));
  const after = executor();
  t.not(after, before);
  t.deepEqual({ ...after.pool }, { connections: 3, keepAliveMs: 1_000, keepAliveMaxMs: 600_000 });
  const second = await channel(t);
  t.deepEqual(await burst(after, second.url, 9), Array(9).fill('ok'));
  t.is(second.opened(), 3, '9 concurrent calls on the 3 connections of the new config');
  // The retired snapshot's executor closed its pool: its kept-alive connections to the first channel are gone.
  const deadline = Date.now() + 2_000;
  while (first.open() > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  t.is(first.open(), 0);
});
