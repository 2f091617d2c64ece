// The generic bank-direct channel (simulator/PROTOCOL.md). This is what the kernel loads: the manifest it checks
// before boot, the factory it calls once per configured account, and the sandbox binding to the simulator.
// It is also the template for adding a bank: see README.md in this folder.
import { z, type ChannelPlugin } from '../../core/index.js';
import { createBankAccount } from './account.js';
import { bankConfigSchema, type BankConfig } from './config.js';
import { PAY_METHODS } from './transformers.js';

/**
 * The simulator's credentials (its README), validated rather than imported as a type: the plugin and the simulator
 * share no code, and this mapping is the only place the plugin reads what the simulator produced.
 */
const simulatorCredentials = z.object({
  baseUrl: z.string().url(),
  merchantId: z.string(),
  merchantPrivateKeyPath: z.string(),
  bankPublicKeyPath: z.string(),
});

const plugin: ChannelPlugin<BankConfig> = {
  manifest: {
    name: 'bank',
    version: '1.0.0',
    kind: 'channel',
    contract: '1',
    description: 'Generic bank-direct API: JSON over HTTPS, RSA-SHA256 header signatures, signed notifications and CSV statements',
    payMethods: PAY_METHODS,
    configSchema: bankConfigSchema,
  },

  createAccount: createBankAccount,

  sandbox: {
    async startSimulator(opts) {
      // Imported lazily so a production gateway never loads simulator code.
      const { startBankSimulator } = await import('./simulator/index.js');
      return startBankSimulator(opts);
    },
    accountConfig(credentials, variant) {
      // The bank simulator issues a single merchant identity; there is no service-provider mode in this protocol.
      if (variant !== undefined && variant !== 'default') throw new Error(`bank simulator has no identity "${variant}" (only "default")`);
      const c = simulatorCredentials.parse(credentials);
      // Absolute paths, as a merchant would configure files downloaded from the portal; parse() fills the knobs'
      // defaults, which are exactly this protocol's.
      return bankConfigSchema.parse({
        merchant_id: c.merchantId,
        merchant_private_key: c.merchantPrivateKeyPath,
        bank_public_key: c.bankPublicKeyPath,
        base_url: c.baseUrl,
      });
    },
  },
};

export default plugin;
