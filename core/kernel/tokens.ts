/** Injection tokens: the kernel wires by explicit token, so no runner-specific decorator metadata is needed. */
export const TOKENS = {
  Store: Symbol('Store'),
  Metrics: Symbol('Metrics'),
  Logger: Symbol('Logger'),
  Signer: Symbol('GatewaySigner'),
  Runtime: Symbol('ConfigRuntime'),
  OutboxSignal: Symbol('OutboxSignal'),
  DispatcherSettings: Symbol('DispatcherSettings'),
  DefaultFeeRate: Symbol('DefaultFeeRate'),
  RoutingState: Symbol('RoutingState'),
  AccountWork: Symbol('AccountWork'),
} as const;
