// The kernel's channel executor against raw loopback servers: what each way of failing means for "may the order
// exist at the channel" (the fact failover depends on), keep-alive reuse, and the per-call timeout.
import test from 'ava';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { ChannelError, type PluginLogger } from '../../core/index.js';
import { DEFAULT_POOL, KernelChannelHttp, type PoolSettings } from '../../core/kernel/channel-http.js';
import { Metrics } from '../../core/ops/metrics.js';

const silent: PluginLogger = { debug() {}, info() {}, warn() {}, error() {} };

function executor(t: { teardown(fn: () => void): void }, timeoutMs = 2_000, pool?: PoolSettings): KernelChannelHttp {
  const http = new KernelChannelHttp('raw', timeoutMs, silent, new Metrics({ defaultMetrics: false }), pool);
  t.teardown(() => http.dispose());
  return http;
}

async function listen(t: { teardown(fn: () => void): void }, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server; sockets: Set<Socket> }> {
  const server = createServer(handler);
  const sockets = new Set<Socket>();
  server.on('connection', (s) => sockets.add(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, sockets };
}

async function channelError(p: Promise<unknown>): Promise<ChannelError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ChannelError) return err;
    throw err;
  }
  throw new Error('expected a ChannelError');
}

test('a refused connection never sent anything: mayExist is false', async (t) => {
  const probe = createTcpServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const err = await channelError(executor(t).send({ method: 'POST', url: `http://127.0.0.1:${port}/pay`, body: '{}', operation: 'create_payment' }));
  t.like(err, { code: 'channel_unavailable', mayExist: false, channelCode: 'ECONNREFUSED' });
});

test('an invalid URL, protocol or header never sent anything, and leaves no timer behind', async (t) => {
  const http = executor(t);
  const err = await channelError(http.send({ method: 'POST', url: 'http://127.0.0.1:9/pay', headers: { 'x-sign': '签名' }, body: '{}', timeoutMs: 100, operation: 'create_payment' }));
  t.like(err, { code: 'channel_unavailable', mayExist: false });
  await new Promise((resolve) => setTimeout(resolve, 200)); // past the call's timeout: nothing fires
  t.like(await channelError(http.send({ method: 'GET', url: 'not a url', operation: 'query' })), { mayExist: false, channelCode: 'ERR_INVALID_URL' });
  t.like(await channelError(http.send({ method: 'GET', url: 'ftp://127.0.0.1/x', operation: 'query' })), { mayExist: false, channelCode: 'ERR_INVALID_PROTOCOL' });
});

test('a request read by a channel that never answers times out with mayExist true', async (t) => {
  let received = 0;
  const { url } = await listen(t, (req) => {
    received++;
    req.resume(); // read it all, answer nothing
  });
  const started = Date.now();
  const err = await channelError(executor(t, 5_000).send({ method: 'POST', url: `${url}/pay`, body: '{"a":1}', timeoutMs: 300, operation: 'create_payment' }));
  t.like(err, { code: 'timeout', mayExist: true });
  t.is(received, 1);
  t.true(Date.now() - started < 3_000, 'the per-call timeout overrides the account one');
});

test('an answer cut off mid-body leaves the outcome unknown: mayExist true', async (t) => {
  const { url } = await listen(t, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
    res.write('{"status":');
    setTimeout(() => res.socket?.destroy(), 20);
  });
  const err = await channelError(executor(t).send({ method: 'POST', url: `${url}/pay`, body: '{}', operation: 'create_payment' }));
  t.like(err, { code: 'channel_unavailable', mayExist: true });
});

test('answers come back whole: status, headers, bytes, text; gzip is undone; the request id travels', async (t) => {
  let seen: IncomingMessage | undefined;
  let body = '';
  const { url } = await listen(t, (req, res) => {
    seen = req;
    req.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => {
      if (req.url === '/gz') {
        res.writeHead(200, { 'content-encoding': 'gzip', 'content-type': 'application/json' });
        res.end(gzipSync('{"packed":"中文"}'));
      } else {
        res.writeHead(404, { 'x-channel': 'raw' });
        res.end('{"code":"ORDER_NOT_FOUND"}');
      }
    });
  });
  const http = executor(t);
  const res = await http.send({ method: 'POST', url: `${url}/x?q=1`, headers: { 'content-type': 'application/json' }, body: '{"amount":100}', operation: 'query', requestId: 'req_abc' });
  t.is(res.status, 404);
  t.is(res.headers['x-channel'], 'raw');
  t.is(res.text, '{"code":"ORDER_NOT_FOUND"}');
  t.deepEqual(res.body, Buffer.from(res.text));
  t.is(seen!.url, '/x?q=1');
  t.is(seen!.headers['x-request-id'], 'req_abc');
  t.is(seen!.headers['content-length'], String(Buffer.byteLength('{"amount":100}')));
  t.is(body, '{"amount":100}');
  // A plugin's own request id (it may be signed) is kept, whatever its case.
  await http.send({ method: 'GET', url: `${url}/x`, headers: { 'X-Request-Id': 'plugin-1' }, operation: 'query', requestId: 'req_abc' });
  t.is(seen!.headers['x-request-id'], 'plugin-1');
  const packed = await http.send({ method: 'GET', url: `${url}/gz`, operation: 'query' });
  t.is(packed.text, '{"packed":"中文"}');
});

test('sequential calls reuse kept-alive connections', async (t) => {
  const { url, sockets } = await listen(t, (req, res) => {
    req.resume();
    res.end('ok');
  });
  const http = executor(t);
  for (let i = 0; i < 20; i++) t.is((await http.send({ method: 'POST', url: `${url}/pay`, body: `{"i":${i}}`, operation: 'create_payment' })).text, 'ok');
  // undici hands a socket back to the pool one event-loop turn after its answer (a server that said keep-alive may
  // still close it), so a call made at once opens a second connection; after that the two are reused.
  t.true(sockets.size <= 2, `${sockets.size} connections for 20 calls`);
});

test('a TLS handshake that never completes is a connect timeout: nothing was sent, mayExist false', async (t) => {
  // Accepts TCP and then stays silent, so the ClientHello is never answered and no request byte can follow.
  const sockets = new Set<Socket>();
  const silentTcp = createTcpServer((s) => {
    sockets.add(s);
    s.resume();
  });
  await new Promise<void>((resolve) => silentTcp.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    silentTcp.close();
  });
  const port = (silentTcp.address() as AddressInfo).port;
  const err = await channelError(executor(t, 5_000).send({ method: 'POST', url: `https://127.0.0.1:${port}/pay`, body: '{}', timeoutMs: 300, operation: 'create_payment' }));
  t.like(err, { code: 'timeout', mayExist: false });
  t.is(sockets.size, 1);
});

test('a call that timed out queued behind busy connections is never written, and costs no warm connection', async (t) => {
  const held: ServerResponse[] = [];
  const seen: string[] = [];
  let closed = 0;
  const { url, server } = await listen(t, (req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => {
      seen.push(body);
      if (body.startsWith('hold')) held.push(res);
      else res.end('ok');
    });
  });
  server.on('connection', (s: Socket) => s.on('close', () => closed++));
  const http = executor(t, 5_000);
  // The executor keeps at most 64 connections per origin: the 65th call waits in undici's queue.
  const busy = Array.from({ length: 64 }, (_, i) => http.send({ method: 'POST', url: `${url}/pay`, body: `hold${i}`, operation: 'create_payment' }));
  while (held.length < 64) await new Promise((resolve) => setTimeout(resolve, 10));
  const late = await channelError(http.send({ method: 'POST', url: `${url}/pay`, body: 'LATE', timeoutMs: 200, operation: 'create_payment' }));
  t.like(late, { code: 'timeout', mayExist: false });
  for (const res of held) res.end('ok');
  await Promise.all(busy);
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.false(seen.includes('LATE'), 'a call that already ended must never reach the channel');
  t.is(closed, 0, 'refusing the ended call keeps the warm connection it was given');
});

/** Answers every call after `delayMs`, counting the connections it was reached on and timing each one's end. */
async function slowServer(t: { teardown(fn: () => void): void }, delayMs: number, keepAliveHint: boolean) {
  const opened: Array<{ lastAnswer: number; closedAfterMs: number | null }> = [];
  const { url, server } = await listen(t, (req, res) => {
    req.resume();
    setTimeout(() => {
      res.end('ok');
      const conn = byId.get(req.socket)!;
      conn.lastAnswer = performance.now();
    }, delayMs);
  });
  // Node answers with `Keep-Alive: timeout=5` unless its own keep-alive timeout is 0 (then it sends no hint and keeps idle sockets open).
  if (!keepAliveHint) server.keepAliveTimeout = 0;
  const byId = new Map<Socket, { lastAnswer: number; closedAfterMs: number | null }>();
  server.on('connection', (s: Socket) => {
    const conn = { lastAnswer: performance.now(), closedAfterMs: null as number | null };
    opened.push(conn);
    byId.set(s, conn);
    s.on('close', () => (conn.closedAfterMs = performance.now() - conn.lastAnswer));
  });
  return { url, opened };
}

test('the pool: at most `connections` to an origin, concurrent calls beyond them queue; the defaults are the former fixed values', async (t) => {
  t.deepEqual({ ...executor(t).pool }, { connections: 64, keepAliveMs: 4_000, keepAliveMaxMs: 600_000 });
  t.is(executor(t).pool, DEFAULT_POOL);
  const { url, opened } = await slowServer(t, 50, true);
  const http = executor(t, 5_000, { ...DEFAULT_POOL, connections: 2 });
  const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => http.send({ method: 'POST', url: `${url}/pay`, body: `{"i":${i}}`, operation: 'create_payment' })));
  t.deepEqual(answers.map((a) => a.text), Array(8).fill('ok'));
  t.is(opened.length, 2, '8 concurrent calls on 2 connections');
});

test('the pool: an idle connection is closed after keep_alive_ms without a Keep-Alive hint, and a hint is followed only up to keep_alive_max_ms', async (t) => {
  const quiet = await slowServer(t, 0, false);
  await executor(t, 5_000, { ...DEFAULT_POOL, keepAliveMs: 300 }).send({ method: 'GET', url: `${quiet.url}/q`, operation: 'query' });
  const hinted = await slowServer(t, 0, true);
  await executor(t, 5_000, { ...DEFAULT_POOL, keepAliveMaxMs: 400 }).send({ method: 'GET', url: `${hinted.url}/q`, operation: 'query' });
  const kept = await slowServer(t, 0, false);
  await executor(t).send({ method: 'GET', url: `${kept.url}/q`, operation: 'query' });
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  const closedAfter = (opened: Array<{ closedAfterMs: number | null }>) => opened.map((c) => c.closedAfterMs);
  t.is(quiet.opened.length, 1);
  t.true(quiet.opened[0]!.closedAfterMs !== null && quiet.opened[0]!.closedAfterMs >= 250 && quiet.opened[0]!.closedAfterMs < 1_000, `closed after ${closedAfter(quiet.opened)} ms`);
  // The hint (timeout=5 → 3 s with undici's 2 s margin) is capped at 400 ms.
  t.true(hinted.opened[0]!.closedAfterMs !== null && hinted.opened[0]!.closedAfterMs >= 350 && hinted.opened[0]!.closedAfterMs < 1_000, `closed after ${closedAfter(hinted.opened)} ms`);
  t.deepEqual(closedAfter(kept.opened), [null], 'with the default keep_alive_ms (4 s) the connection is still open');
});
