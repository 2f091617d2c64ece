// A loopback HTTP endpoint that records every request it receives (path, headers, raw body) and answers as told: the
// merchant's notify URL in simulator tests and the kernel's in plugin tests. Each test wraps it with the reading
// of the body its channel speaks (form fields, signed JSON, …).
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedPost {
  path: string;
  headers: IncomingHttpHeaders;
  rawBody: Buffer;
  at: number;
}

export interface RecorderAnswer {
  status: number;
  body?: string;
  contentType?: string;
}

export class PostRecorder {
  readonly posts: RecordedPost[] = [];
  url = '';
  private server: Server | undefined;
  private waiters: Array<() => void> = [];

  /** `answer` is asked for each request, with how many this path has had so far (this one included). */
  constructor(private readonly answer: (post: RecordedPost, nthForPath: number) => RecorderAnswer = () => ({ status: 200, body: 'ok' })) {}

  async start(path = ''): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const post: RecordedPost = { path: req.url ?? '/', headers: { ...req.headers }, rawBody: Buffer.concat(chunks), at: Date.now() };
        this.posts.push(post);
        const answer = this.answer(post, this.posts.filter((p) => p.path === post.path).length);
        res.writeHead(answer.status, answer.contentType ? { 'content-type': answer.contentType } : {}).end(answer.body ?? '');
        for (const wake of this.waiters.splice(0)) wake();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${path}`;
  }

  /** Resolves with `find()`'s first defined answer, re-asked after every request received, or fails after timeoutMs. */
  async waitUntil<T>(find: () => T | undefined | Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = await find();
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
