// undici, loaded in part: the connection-pooling Agent and the request API. Its index also sets
// up fetch, WebSocket, EventSource, caches and mocks (and pulls in Node's own copy of undici);
// that costs ~90 ms at every start of a short-lived CLI and none of it is used here.
import AgentClass from 'undici/lib/dispatcher/agent.js';
import ClientClass from 'undici/lib/dispatcher/client.js';
import DispatcherClass from 'undici/lib/dispatcher/dispatcher.js';
import api from 'undici/lib/api/index.js';
import type { Agent as AgentType, Client as ClientType, Dispatcher } from 'undici';

// What undici's index does to give every dispatcher .request(), .stream() …
Object.assign(DispatcherClass.prototype, api);

export const Agent = AgentClass;
export type Agent = AgentType;
/** One connection (used for pipelining: requests that must reach the server in order). */
export const Client = ClientClass;
export type Client = ClientType;
export type { Dispatcher };

export interface RequestOptions {
  readonly method: Dispatcher.HttpMethod;
  readonly dispatcher: Dispatcher;
  readonly headers?: Record<string, string>;
  readonly body?: Dispatcher.DispatchOptions['body'];
  readonly signal?: AbortSignal;
  /** Lets a pipelined request follow this one before its answer (undici holds the line otherwise). */
  readonly blocking?: boolean;
  readonly idempotent?: boolean;
}

/** undici's request(url, options), on an explicit dispatcher. */
export function request(url: string | URL, o: RequestOptions): Promise<Dispatcher.ResponseData<unknown>> {
  const u = typeof url === 'string' ? new URL(url) : url;
  return o.dispatcher.request({
    origin: u.origin,
    path: `${u.pathname}${u.search}`,
    method: o.method,
    ...(o.headers ? { headers: o.headers } : {}),
    ...(o.body !== undefined ? { body: o.body } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.blocking !== undefined ? { blocking: o.blocking } : {}),
    ...(o.idempotent !== undefined ? { idempotent: o.idempotent } : {}),
  });
}
