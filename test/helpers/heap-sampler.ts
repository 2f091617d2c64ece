import { Session } from 'node:inspector/promises';

/**
 * Bytes allocated under the function named `functionName` while `run` runs, garbage included: V8's sampling heap
 * profiler keeps collected objects in its profile, where heap growth after a forced GC would show only what is retained.
 * One sample per `samplingInterval` bytes on average.
 */
export async function bytesAllocatedUnder(functionName: string, samplingInterval: number, run: () => void): Promise<number> {
  const session = new Session();
  session.connect();
  try {
    await session.post('HeapProfiler.enable');
    await session.post('HeapProfiler.startSampling', { samplingInterval, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    run();
    const { profile } = await session.post('HeapProfiler.stopSampling');
    let bytes = 0;
    const walk = (node: typeof profile.head, under: boolean): void => {
      const inside = under || node.callFrame.functionName === functionName;
      if (inside) bytes += node.selfSize;
      for (const child of node.children) walk(child, inside);
    };
    walk(profile.head, false);
    return bytes;
  } finally {
    session.disconnect();
  }
}
