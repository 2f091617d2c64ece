/** The published contract: everything a plugin may import from the kernel. */
export * from './contract/money.js';
export * from './contract/plugin.js';
export * from './contract/channel.js';
export * from './contract/capability.js';
export * from './contract/simulator-faults.js';
export { z } from 'zod';
export * from './contract/signing.js';
