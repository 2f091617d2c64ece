import type { ConfigRuntime } from './runtime.js';

/** The config and plugin status the admin API and `corbel config check` show. */
export async function configStatus(runtime: ConfigRuntime) {
  const snap = runtime.current;
  const accounts = await Promise.all([...snap.accounts.values()].map(async (a) => ({
    name: a.name,
    plugin: a.plugin,
    sandbox: a.sandbox,
    pay_methods: [...a.payMethods],
    status: a.instance ? 'serving' : 'failed',
    error: a.error,
    health: a.instance ? await a.instance.health().catch((e: Error) => ({ ok: false, detail: e.message })) : null,
  })));
  return {
    version: snap.version,
    loaded_at: snap.loadedAt.toISOString(),
    path: snap.source.path,
    mode: snap.config.mode,
    channels: accounts,
    capabilities: snap.capabilities.map((c) => ({ name: c.name, plugin: c.plugin, status: c.instance ? 'serving' : 'failed', error: c.error })),
    problems: snap.problems,
    last_reload: runtime.lastReload && { at: runtime.lastReload.at.toISOString(), trigger: runtime.lastReload.trigger, result: runtime.lastReload.result },
  };
}
