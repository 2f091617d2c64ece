/** UnionPay online gateway (全渠道, ACP 5.1.0, signMethod 01) channel plugin. */
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import type { ChannelAccountContext, ChannelPlugin, RunningChannelSimulator } from '../../core/index.js';
import { UnionPayAccount, PAY_METHODS } from './account.js';
import { unionPayConfigSchema, type UnionPayConfig } from './config.js';
import { AcpVerifier, loadSigningMaterial, parseCertificate } from './transport.js';

/** Inline PEM, or a path (relative to configDir) to a PEM/DER file. */
async function certificateSource(value: string, configDir: string): Promise<Buffer> {
  if (value.trimStart().startsWith('-----BEGIN')) return Buffer.from(value, 'utf8');
  return readFile(isAbsolute(value) ? value : resolve(configDir, value));
}

async function createAccount(config: UnionPayConfig, ctx: ChannelAccountContext): Promise<UnionPayAccount> {
  const pfx = await readFile(isAbsolute(config.sign_cert_pfx) ? config.sign_cert_pfx : resolve(ctx.configDir, config.sign_cert_pfx));
  const signing = loadSigningMaterial(pfx, config.sign_cert_password);
  const root = parseCertificate(await certificateSource(config.root_cert, ctx.configDir));
  const middle = parseCertificate(await certificateSource(config.middle_cert, ctx.configDir));
  const verifier = new AcpVerifier(root, middle);
  const caNotAfter = new Date(Math.min(new Date(root.validTo).getTime(), new Date(middle.validTo).getTime()));
  ctx.logger.info({ account: ctx.accountName, mer_id: config.mer_id, cert_id: signing.certId }, 'unionpay account ready');
  return new UnionPayAccount(config, { signing, verifier, caNotAfter }, ctx);
}

/** The fields of the simulator's credentials.json this plugin reads (see simulator/README.md). */
interface SandboxCredentials {
  merId: string;
  signCertPfxPath: string;
  signCertPassword: string;
  rootCertPem: string;
  middleCertPem: string;
  frontTransUrl: string;
  backTransUrl: string;
  singleQueryUrl: string;
  fileTransUrl: string;
}

const plugin: ChannelPlugin<UnionPayConfig> = {
  manifest: {
    name: 'unionpay',
    version: '0.1.0',
    kind: 'channel',
    contract: '1',
    description: 'UnionPay online gateway (ACP 5.1.0): browser gateway pay and QR pay',
    payMethods: PAY_METHODS,
    configSchema: unionPayConfigSchema,
  },
  createAccount,
  sandbox: {
    async startSimulator(opts): Promise<RunningChannelSimulator> {
      const { startUnionPaySimulator } = await import('./simulator/index.js');
      const sim = await startUnionPaySimulator(opts);
      return { url: sim.url, credentials: sim.credentials, close: () => sim.close() };
    },
    accountConfig(credentials, variant): UnionPayConfig {
      if (variant !== undefined && variant !== 'default') throw new Error(`the UnionPay simulator has one merchant identity; no variant ${variant}`);
      const c = credentials as SandboxCredentials;
      return unionPayConfigSchema.parse({
        mer_id: c.merId,
        sign_cert_pfx: c.signCertPfxPath,
        sign_cert_password: c.signCertPassword,
        root_cert: c.rootCertPem,
        middle_cert: c.middleCertPem,
        front_trans_url: c.frontTransUrl,
        back_trans_url: c.backTransUrl,
        query_url: c.singleQueryUrl,
        file_trans_url: c.fileTransUrl,
      });
    },
  },
};

export default plugin;
