// Child processes of the e2e bench: started from the repository root, tracked, and all killed at the end, on error
// and on SIGINT/SIGTERM. CPU time is read from /proc/<pid>/stat.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (dist/test/bench → ../../..), where bin/corbel lives. */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

export interface Child {
  name: string;
  process: ChildProcess;
  pid: number;
  /** Everything the child wrote to stderr so far (for error messages). */
  stderr(): string;
}

export class ChildProcesses {
  private readonly children = new Set<Child>();

  constructor() {
    // Last resort: whatever happens to this process, no child outlives it.
    process.on('exit', () => this.killNow());
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        process.stderr.write(`\n${signal}: stopping ${this.children.size} child process(es)\n`);
        void this.stopAll().finally(() => process.exit(130));
      });
    }
  }

  /** Starts `node <args>` in the repository root with stdout and stderr piped. */
  spawnNode(name: string, args: string[], env: NodeJS.ProcessEnv = {}): Child {
    const proc = spawn(process.execPath, args, { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    if (proc.pid === undefined) throw new Error(`${name}: could not start node ${args.join(' ')}`);
    let stderr = '';
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-8_000);
    });
    const child: Child = { name, process: proc, pid: proc.pid, stderr: () => stderr };
    this.children.add(child);
    proc.once('exit', () => this.children.delete(child));
    return child;
  }

  /** SIGTERM to each child, SIGKILL to those still running after graceMs. */
  async stopAll(graceMs = 3_000): Promise<void> {
    await Promise.all([...this.children].map((child) => stopChild(child, graceMs)));
  }

  private killNow(): void {
    for (const child of this.children) child.process.kill('SIGKILL');
  }
}

function stopChild(child: Child, graceMs: number): Promise<void> {
  const proc = child.process;
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const killer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    proc.once('exit', () => {
      clearTimeout(killer);
      done();
    });
    proc.kill('SIGTERM');
  });
}

/** Resolves with the first complete JSON value the child prints on stdout (it may span several lines). */
export function firstJsonOnStdout<T>(child: Child, timeoutMs = 30_000): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    let text = '';
    const timer = setTimeout(() => fail(new Error(`${child.name}: no JSON on stdout within ${timeoutMs} ms\n${child.stderr()}`)), timeoutMs);
    const onData = (chunk: string) => {
      text += chunk;
      try {
        const value = JSON.parse(text) as T;
        cleanup();
        resolvePromise(value);
      } catch {
        // not complete yet
      }
    };
    const onExit = (code: number | null) => fail(new Error(`${child.name} exited (${code}) before printing its JSON\n${child.stderr()}`));
    const cleanup = () => {
      clearTimeout(timer);
      child.process.stdout!.off('data', onData);
      child.process.off('exit', onExit);
    };
    const fail = (err: Error) => {
      cleanup();
      reject(err);
    };
    child.process.stdout!.setEncoding('utf8').on('data', onData);
    child.process.once('exit', onExit);
  });
}

/** Resolves with the first match of `pattern` on the child's stderr. */
export function matchOnStderr(child: Child, pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => fail(new Error(`${child.name}: ${pattern} not seen on stderr within ${timeoutMs} ms\n${child.stderr()}`)), timeoutMs);
    const check = () => {
      const match = child.stderr().match(pattern);
      if (!match) return;
      cleanup();
      resolvePromise(match);
    };
    const onExit = (code: number | null) => fail(new Error(`${child.name} exited (${code}) during start\n${child.stderr()}`));
    const cleanup = () => {
      clearTimeout(timer);
      child.process.stderr!.off('data', check);
      child.process.off('exit', onExit);
    };
    const fail = (err: Error) => {
      cleanup();
      reject(err);
    };
    child.process.stderr!.on('data', check);
    child.process.once('exit', onExit);
    check();
  });
}

/** Drains a child's stdout (logs) so a full pipe never blocks it. */
export function discardStdout(child: Child): void {
  child.process.stdout!.resume();
}

let clockTicks: number | undefined;

function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User + system CPU seconds the process has used so far (all its threads), from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Field 2 (comm) is parenthesised and may hold spaces: count fields after the last ')'. utime and stime are 14, 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
}

/** CPU seconds each process uses while fn runs. */
export async function measureCpu<T>(pids: Record<string, number>, fn: () => Promise<T>): Promise<{ result: T; cpuS: Record<string, number> }> {
  const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
  const result = await fn();
  const cpuS = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid) - before[name]!]));
  return { result, cpuS };
}
