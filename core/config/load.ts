import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml, parseDocument } from 'yaml';
import type { ZodError } from 'zod';
import { configSchema, type CorbelConfig } from './schema.js';
import { strategyFieldProblems } from '../routing/validate.js';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid config:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export interface LoadedConfig {
  config: CorbelConfig;
  /** Absolute path of the file, or null when built from the environment alone. */
  path: string | null;
  dir: string;
  /** Absolute data directory. */
  dataDir: string;
}

/**
 * `channels.wechat_main.config.mchid: Required`: one line per problem, naming the path. Given the parsed input, a
 * routing rule is also named as the load-time checks name it: `routing.rules.1 (promo).match.pay_method: …`.
 */
export function formatZodError(err: ZodError, prefix = '', input?: unknown): string[] {
  return err.issues.map((issue) => {
    const path = [prefix, ...issue.path.map(String)].filter(Boolean);
    const ruleName = prefix === '' && issue.path[0] === 'routing' && issue.path[1] === 'rules' && issue.path.length > 2 ? nameOfRule(input, issue.path[2]!) : undefined;
    if (ruleName !== undefined) path[2] = `${path[2]} (${ruleName})`;
    const message = issue.code === 'invalid_type' && issue.received === 'undefined' ? 'required' : issue.message;
    return `${path.join('.') || '(root)'}: ${message}`;
  });
}

/** The name a routing rule was given in the raw config, when it has a usable one. */
function nameOfRule(input: unknown, index: string | number): string | undefined {
  const rules = (input as { routing?: { rules?: unknown } } | undefined)?.routing?.rules;
  const rule: unknown = Array.isArray(rules) ? rules[Number(index)] : undefined;
  const name = rule && typeof rule === 'object' ? (rule as { name?: unknown }).name : undefined;
  return typeof name === 'string' && name !== '' ? name : undefined;
}

/** Named shortcuts, then the general form CORBEL__SECTION__KEY=value for any config path. */
const ENV_SHORTCUTS: Record<string, string[]> = {
  CORBEL_PORT: ['server', 'port'],
  CORBEL_HOST: ['server', 'host'],
  CORBEL_PUBLIC_URL: ['server', 'public_url'],
  CORBEL_DATA_DIR: ['data_dir'],
  CORBEL_ADMIN_TOKEN: ['admin', 'token'],
  CORBEL_LOG_LEVEL: ['log', 'level'],
  CORBEL_MODE: ['mode'],
};

export function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const overrides: Array<[string[], string]> = [];
  for (const [name, path] of Object.entries(ENV_SHORTCUTS)) {
    const value = env[name];
    if (value !== undefined && value !== '') overrides.push([path, value]);
  }
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('CORBEL__') || value === undefined) continue;
    overrides.push([name.slice('CORBEL__'.length).toLowerCase().split('__'), value]);
  }
  for (const [path, value] of overrides) setPath(raw, path, parseYaml(value) as unknown);
  return raw;
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

/** `${NAME}` in a string value is replaced from the environment, so secrets can stay out of the file. */
function interpolateEnv(value: unknown, env: NodeJS.ProcessEnv, path: string, problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Z0-9_]+)\}/g, (_, name: string) => {
      const v = env[name];
      if (v === undefined) {
        problems.push(`${path}: environment variable ${name} is not set`);
        return '';
      }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolateEnv(v, env, `${path}.${i}`, problems));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateEnv(v, env, path ? `${path}.${k}` : k, problems)]));
  }
  return value;
}

export function parseConfigText(text: string, env: NodeJS.ProcessEnv, source: string): CorbelConfig {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) throw new ConfigError(doc.errors.map((e) => `${source}: ${e.message.split('\n')[0]}`));
  const parsed: unknown = doc.toJS() ?? {};
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError([`${source}: the top level must be a mapping`]);
  const problems: string[] = [];
  const interpolated = interpolateEnv(parsed, env, '', problems) as Record<string, unknown>;
  if (problems.length > 0) throw new ConfigError(problems);
  const raw = applyEnvOverrides(interpolated, env);
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(formatZodError(result.error, '', raw));
  // What the schema's defaults hide: a field set on a rule whose strategy never reads it.
  const misplaced = strategyFieldProblems(raw);
  if (misplaced.length > 0) throw new ConfigError(misplaced);
  return result.data;
}

export function loadConfig(path: string | null, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  let text = '';
  let absolute: string | null = null;
  if (path) {
    absolute = resolve(path);
    try {
      text = readFileSync(absolute, 'utf8');
    } catch (err) {
      throw new ConfigError([`${absolute}: ${(err as Error).message}`]);
    }
  }
  const config = parseConfigText(text, env, absolute ?? '(environment)');
  const dir = absolute ? dirname(absolute) : process.cwd();
  // data_dir is relative to the working directory, as a user typing `npm start` expects.
  return { config, path: absolute, dir, dataDir: resolve(config.data_dir) };
}

export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.CORBEL_CONFIG ?? 'config/corbel.yaml';
}

