export interface Fault {
  readonly method: string;
  readonly path: RegExp;
  readonly status?: number;
  readonly headers?: Record<string, string>;
  readonly dropAfterBytes?: number;
  readonly stallAfterHeaders?: boolean;
  readonly endless?: boolean;
  readonly truncateTo?: number;
  readonly closeDelimited?: boolean;
  readonly trickleMs?: number;
  readonly noBody?: boolean;
  readonly body?: unknown;
  readonly fake201?: boolean;
  readonly neverAnswer?: boolean;
}
export interface FaultProxy {
  readonly addr: string;
  readonly log: { method: string; path: string; status: number; at: number }[];
  stop(): Promise<void>;
}
export function startFaultProxy(upstream: string, faults: Fault[]): Promise<FaultProxy>;
