import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ChannelPlugin } from '../contract/channel.js';
import type { CapabilityPlugin } from '../contract/capability.js';

export const CONTRACT_VERSION = '1';

/** dist/ root: built plugins live at dist/plugins/<name>/index.js. */
const DIST_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export class PluginLoadError extends Error {
  constructor(readonly plugin: string, reason: string) {
    super(`plugin ${plugin}: ${reason}`);
    this.name = 'PluginLoadError';
  }
}

export type AnyPlugin = ChannelPlugin | CapabilityPlugin;

/** Where a plugin is loaded from: an explicit mapping in the config, else the built-in folder. */
export function pluginSpecifier(name: string, mappings: Record<string, string>, configDir: string): string {
  const mapped = mappings[name];
  if (mapped) {
    if (mapped.startsWith('.') || isAbsolute(mapped)) return pathToFileURL(resolve(configDir, mapped)).href;
    return mapped; // an npm package name
  }
  if (!/^[a-z0-9][a-z0-9_-]*$/.test(name)) throw new PluginLoadError(name, 'plugin names are lowercase letters, digits, - and _');
  const builtIn = resolve(DIST_ROOT, 'plugins', name, 'index.js');
  if (!existsSync(builtIn)) throw new PluginLoadError(name, `no folder plugins/${name} and no mapping under plugins: in the config`);
  return pathToFileURL(builtIn).href;
}

export async function loadPlugin(name: string, mappings: Record<string, string>, configDir: string): Promise<AnyPlugin> {
  const specifier = pluginSpecifier(name, mappings, configDir);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(specifier)) as Record<string, unknown>;
  } catch (err) {
    throw new PluginLoadError(name, `cannot be imported: ${(err as Error).message}`);
  }
  const plugin = (mod.default ?? mod.plugin) as AnyPlugin | undefined;
  validatePlugin(name, plugin);
  return plugin;
}

function validatePlugin(name: string, plugin: AnyPlugin | undefined): asserts plugin is AnyPlugin {
  if (!plugin || typeof plugin !== 'object' || !plugin.manifest) throw new PluginLoadError(name, 'module exports no plugin (default export with a manifest)');
  const m = plugin.manifest;
  if (typeof m.name !== 'string' || typeof m.version !== 'string') throw new PluginLoadError(name, 'manifest needs name and version');
  if (m.contract !== CONTRACT_VERSION) throw new PluginLoadError(name, `written for kernel contract ${m.contract}, this kernel provides ${CONTRACT_VERSION}`);
  if (!m.configSchema || typeof (m.configSchema as { safeParse?: unknown }).safeParse !== 'function') throw new PluginLoadError(name, 'manifest.configSchema must be a schema');
  if (m.kind === 'channel') {
    const p = plugin as ChannelPlugin;
    if (!Array.isArray(p.manifest.payMethods) || p.manifest.payMethods.length === 0) throw new PluginLoadError(name, 'a channel manifest lists the pay methods it serves');
    if (typeof p.createAccount !== 'function') throw new PluginLoadError(name, 'a channel plugin has createAccount()');
  } else if (m.kind === 'capability') {
    if (typeof (plugin as CapabilityPlugin).create !== 'function') throw new PluginLoadError(name, 'a capability plugin has create()');
  } else {
    throw new PluginLoadError(name, `unknown kind ${String((m as { kind: unknown }).kind)}`);
  }
}
