// Temporary directories of the benches, removed when the process exits however it exits (end, error, SIGINT).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const created = new Set<string>();
let hooked = false;

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  created.delete(dir);
}

export function makeTempDir(prefix: string): string {
  if (!hooked) {
    process.on('exit', () => {
      for (const dir of created) rmSync(dir, { recursive: true, force: true });
    });
    // A signal ends the process without 'exit' unless someone handles it; leave it to another handler if there is one.
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.on(signal, () => {
        if (process.listenerCount(signal) === 1) process.exit(130);
      });
    }
    hooked = true;
  }
  const dir = mkdtempSync(join(tmpdir(), prefix));
  created.add(dir);
  return dir;
}
