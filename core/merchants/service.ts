import { generateKeyPairSync, createPublicKey, randomBytes } from 'node:crypto';
import { inject, injectable } from 'tsyringe';
import { TOKENS } from '../kernel/tokens.js';
import { ApiError } from '../errors.js';
import { newId } from '../crypto/ids.js';
import type { Store } from '../store/index.js';
import type { AppRecord, BindingRecord, MerchantRecord, MerchantStatus } from '../payments/types.js';

/** Which status each review action moves a merchant from, and to. */
const TRANSITIONS: Record<'approve' | 'reject' | 'suspend', { from: MerchantStatus[]; to: MerchantStatus }> = {
  approve: { from: ['pending_review', 'suspended'], to: 'active' },
  reject: { from: ['pending_review'], to: 'rejected' },
  suspend: { from: ['active'], to: 'suspended' },
};
export type MerchantAction = keyof typeof TRANSITIONS;

export interface NewApp {
  auth_type: 'hmac' | 'rsa';
  /** For rsa: the merchant's own public key; without it the gateway generates a pair and returns the private key once. */
  public_key?: string;
  notify_url?: string;
}

export interface CreatedApp {
  app: AppRecord;
  /** Shown once: the HMAC secret, or the generated RSA private key. */
  secret?: string;
  private_key?: string;
}

/** Merchant onboarding, apps and channel bindings: used by the admin API and the CLI alike. */
@injectable()
export class MerchantService {
  private readonly listeners: Array<(merchantId: string) => void> = [];

  constructor(
    @inject(TOKENS.Store) private readonly store: Store,
    @inject(TOKENS.DefaultFeeRate) private readonly defaultFeeRateBps: () => number,
  ) {}

  /** Called when a merchant or its apps change, so auth caches drop what they hold. */
  onChange(listener: (merchantId: string) => void): void {
    this.listeners.push(listener);
  }

  async create(input: { name: string; tags?: string[]; fee_rate_bps?: number }): Promise<MerchantRecord> {
    const now = Date.now();
    const m: MerchantRecord = { id: newId('mch'), name: input.name, status: 'pending_review', tags: input.tags ?? [], feeRateBps: input.fee_rate_bps ?? this.defaultFeeRateBps(), createdAt: now, updatedAt: now };
    await this.store.transaction(async (tx) => {
      await this.store.merchants.insert(tx, m);
      await this.store.audit.append(tx, { objectType: 'merchant', objectId: m.id, from: null, to: m.status, source: 'admin', at: now });
    });
    return m;
  }

  async get(id: string): Promise<MerchantRecord> {
    const m = await this.store.merchants.get(this.store.reads, id);
    if (!m) throw new ApiError('merchant_not_found', `no merchant ${id}`, 'id');
    return m;
  }

  list(status?: MerchantStatus): Promise<MerchantRecord[]> {
    return this.store.merchants.list(this.store.reads, status);
  }

  async review(id: string, action: MerchantAction, reason?: string): Promise<MerchantRecord> {
    const { from, to } = TRANSITIONS[action];
    const now = Date.now();
    await this.store.transaction(async (tx) => {
      const current = await this.store.merchants.get(tx, id);
      if (!current) throw new ApiError('merchant_not_found', `no merchant ${id}`, 'id');
      if (current.status === to) return;
      if (!(await this.store.merchants.setStatus(tx, id, from, to, now))) {
        throw new ApiError('invalid_state', `cannot ${action} a merchant that is ${current.status}`, 'status');
      }
      await this.store.audit.append(tx, { objectType: 'merchant', objectId: id, from: current.status, to, source: 'admin', detail: { reason: reason ?? null }, at: now });
    });
    this.changed(id);
    return this.get(id);
  }

  async createApp(merchantId: string, input: NewApp): Promise<CreatedApp> {
    await this.get(merchantId);
    const now = Date.now();
    const app: AppRecord = { id: newId('app'), merchantId, authType: input.auth_type, hmacSecret: null, publicKeyPem: null, notifyUrl: input.notify_url ?? null, status: 'active', createdAt: now };
    const created: CreatedApp = { app };
    if (input.auth_type === 'hmac' && input.public_key) throw new ApiError('invalid_request', 'public_key: only for auth_type rsa', 'public_key');
    if (input.auth_type === 'hmac') {
      app.hmacSecret = randomBytes(32).toString('base64url');
      created.secret = app.hmacSecret;
    } else if (input.public_key) {
      try {
        const key = createPublicKey(input.public_key);
        if (key.asymmetricKeyType !== 'rsa' || (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) throw new Error('need an RSA key of at least 2048 bits');
        app.publicKeyPem = key.export({ type: 'spki', format: 'pem' }).toString();
      } catch (err) {
        throw new ApiError('invalid_request', `public_key is not a usable RSA public key: ${(err as Error).message}`, 'public_key');
      }
    } else {
      const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
      app.publicKeyPem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
      created.private_key = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    }
    await this.store.transaction(async (tx) => {
      await this.store.merchants.insertApp(tx, app);
      await this.store.audit.append(tx, { objectType: 'app', objectId: app.id, from: null, to: 'active', source: 'admin', detail: { merchant_id: merchantId, auth_type: app.authType }, at: now });
    });
    return created;
  }

  async listApps(merchantId: string): Promise<AppRecord[]> {
    await this.get(merchantId);
    return this.store.merchants.listApps(this.store.reads, merchantId);
  }

  async bind(merchantId: string, account: string, input: { sub_merchant_id?: string; params?: Record<string, string> }, knownAccounts: ReadonlySet<string>): Promise<BindingRecord> {
    await this.get(merchantId);
    if (!knownAccounts.has(account)) throw new ApiError('invalid_request', `no channel account ${account} in the config`, 'account');
    const b: BindingRecord = { merchantId, account, subMerchantId: input.sub_merchant_id ?? null, params: input.params ?? {}, createdAt: Date.now() };
    await this.store.transaction((tx) => this.store.merchants.upsertBinding(tx, b));
    this.changed(merchantId);
    return b;
  }

  async unbind(merchantId: string, account: string): Promise<void> {
    const removed = await this.store.transaction((tx) => this.store.merchants.deleteBinding(tx, merchantId, account));
    if (!removed) throw new ApiError('not_found', `merchant ${merchantId} is not bound to ${account}`, 'account');
    this.changed(merchantId);
  }

  listBindings(merchantId: string): Promise<BindingRecord[]> {
    return this.store.merchants.listBindings(this.store.reads, merchantId);
  }

  private changed(merchantId: string): void {
    for (const l of this.listeners) l(merchantId);
  }
}
