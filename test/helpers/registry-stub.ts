// An in-process distribution registry for unit tests of the transport and client: manifests and
// blobs in memory, and a fault hook that can answer, stall, trickle or lie instead. Loopback only.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const digestOf = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface StubRequest {
  readonly method: string;
  readonly path: string;
  readonly at: number;
  readonly range?: string;
  /** The client's port: requests that share it came on one connection. */
  readonly port: number;
}

/** Return true when the fault handled the request (answered, stalled or dropped it). */
export type Fault = (req: IncomingMessage, res: ServerResponse, n: number) => boolean | Promise<boolean>;

export interface RegistryStub {
  readonly addr: string;
  readonly requests: StubRequest[];
  /** repository → reference (tag or digest) → {bytes, mediaType} */
  readonly manifests: Map<string, Map<string, { bytes: Buffer; mediaType: string }>>;
  readonly blobs: Map<string, Buffer>;
  fault?: Fault;
  /** PUTs of manifests are answered 201 but not stored (a registry that lies). */
  dropPuts?: boolean;
  /** Range requests are answered with the whole blob (200), as some registries do. */
  ignoreRanges?: boolean;
  putManifest(repo: string, ref: string, body: Buffer | string, mediaType: string): string;
  putBlob(body: Buffer | string): string;
  close(): Promise<void>;
}

export async function startRegistryStub(): Promise<RegistryStub> {
  const manifests = new Map<string, Map<string, { bytes: Buffer; mediaType: string }>>();
  const blobs = new Map<string, Buffer>();
  const requests: StubRequest[] = [];
  const sockets = new Set<import('node:net').Socket>();
  let n = 0;
  const stub: Partial<RegistryStub> = {};
  // A client may hang up while a fault still decides (a delayed ping the client no longer waits
  // for): reading that request then fails with 'aborted'. A server shrugs at that; so does the
  // stub. Anything else (a fault hook or the stub itself throwing) still fails the test run.
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      res.destroy();
      if (!req.destroyed && (e as NodeJS.ErrnoException).code !== 'ECONNRESET') throw e;
    });
  });
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '').split('?')[0]!;
    requests.push({ method: req.method ?? '', path, at: Date.now(), port: req.socket.remotePort ?? 0, ...(req.headers.range ? { range: String(req.headers.range) } : {}) });
    n++;
    if (stub.fault && (await stub.fault(req, res, n))) return;
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    if (path === '/v2/') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    // Upload sessions: started and cancelled (what a push check does); a blob PUT stores it.
    const up = /^\/v2\/(.+)\/blobs\/uploads\/([^/]*)$/.exec(path);
    if (up) {
      if (req.method === 'POST') return void res.writeHead(202, { location: `/v2/${up[1]}/blobs/uploads/s${n}`, 'docker-upload-uuid': `s${n}` }).end();
      if (req.method === 'DELETE') return void res.writeHead(204).end();
      if (req.method === 'PUT') {
        blobs.set(digestOf(body), body);
        return void res.writeHead(201, { 'docker-content-digest': digestOf(body) }).end();
      }
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(path);
    if (!m) return void res.writeHead(404).end();
    const [, repo, kind, ref] = m as unknown as [string, string, string, string];
    if (kind === 'manifests') {
      if (req.method === 'PUT') {
        const d = digestOf(body);
        if (!stub.dropPuts) {
          const r = manifests.get(repo) ?? new Map();
          r.set(ref, { bytes: body, mediaType: String(req.headers['content-type']) });
          r.set(d, { bytes: body, mediaType: String(req.headers['content-type']) });
          manifests.set(repo, r);
        }
        return void res.writeHead(201, { 'docker-content-digest': d, location: `/v2/${repo}/manifests/${d}` }).end();
      }
      const found = manifests.get(repo)?.get(ref);
      if (!found) return void res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
      res.writeHead(200, { 'content-type': found.mediaType, 'docker-content-digest': digestOf(found.bytes), 'content-length': String(found.bytes.length) });
      return void res.end(req.method === 'HEAD' ? undefined : found.bytes);
    }
    const blob = blobs.get(ref);
    if (!blob) return void res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown' }] }));
    // Ranges, as distribution serves them (unless the stub is told to ignore them).
    const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''));
    if (range && !stub.ignoreRanges && req.method === 'GET') {
      const from = Number(range[1]);
      res.writeHead(206, { 'content-length': String(blob.length - from), 'content-range': `bytes ${from}-${blob.length - 1}/${blob.length}`, 'docker-content-digest': ref });
      return void res.end(blob.subarray(from));
    }
    res.writeHead(200, { 'content-length': String(blob.length), 'docker-content-digest': ref, 'accept-ranges': 'bytes' });
    res.end(req.method === 'HEAD' ? undefined : blob);
  };
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  Object.assign(stub, {
    addr,
    requests,
    manifests,
    blobs,
    putManifest(repo: string, ref: string, body: Buffer | string, mediaType: string) {
      const b = Buffer.from(body);
      const r = manifests.get(repo) ?? new Map();
      r.set(ref, { bytes: b, mediaType });
      r.set(digestOf(b), { bytes: b, mediaType });
      manifests.set(repo, r);
      return digestOf(b);
    },
    putBlob(body: Buffer | string) {
      const b = Buffer.from(body);
      blobs.set(digestOf(b), b);
      return digestOf(b);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  });
  return stub as RegistryStub;
}
