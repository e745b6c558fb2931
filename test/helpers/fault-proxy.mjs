// A loopback HTTP proxy in front of a registry that answers chosen requests with a fault (each
// fault once), forwarding everything else unchanged (Host included, so Locations point back
// here). Plain JavaScript so the tests and the benchmarks (bench/run.mjs) share it.
//
// A fault: { method, path: RegExp } and one of
//   status             answer with this status (and `headers`) instead of forwarding
//   dropAfterBytes     forward the headers and this many body bytes, then drop the connection
//   stallAfterHeaders  forward the headers, then send nothing more
//   endless            forward the body, then zeros without end (no Content-Length)
//   truncateTo         serve only the first N bytes as if they were the whole body
//   closeDelimited     forward the body without Content-Length, ended by closing the connection
//   trickleMs          forward the headers, then the body one byte every trickleMs
//   noBody             with status: answer with no body at all (a bare 429 or 503)
//   body               with status: answer with this JSON body (a registry's own `errors`)
//   fake201            answer a PUT 201 with the digest of what was sent, and store nothing
//   neverAnswer        accept the request and never answer (not even headers)
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest } from 'node:http';
import { createServer as createNetServer } from 'node:net';

/** @returns {Promise<number>} */
async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.listen(0, '127.0.0.1', () => {
      const port = s.address().port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/**
 * @param {string} upstream host:port of the registry
 * @param {Array<{ method: string, path: RegExp, status?: number, headers?: Record<string, string>, dropAfterBytes?: number, stallAfterHeaders?: boolean, endless?: boolean, truncateTo?: number, closeDelimited?: boolean, trickleMs?: number, noBody?: boolean, body?: unknown, fake201?: boolean, neverAnswer?: boolean }>} faults
 * @returns {Promise<{ addr: string, log: { method: string, path: string, status: number, at: number }[], stop: () => Promise<void> }>}
 */

/**
 * A loopback HTTP proxy in front of a registry that answers chosen requests with a fault
 * (once each), forwarding everything else unchanged (Host included, so Locations point back here).
 */

export async function startFaultProxy(upstream, faults) {
  const pending = [...faults];
  const log = [];
  const [uhost, uport] = upstream.split(':');
  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    const i = pending.findIndex((f) => f.method === req.method && f.path.test(path));
    const f0 = i >= 0 ? pending[i] : undefined;
    if (f0 && (f0.fake201 || f0.neverAnswer)) {
      pending.splice(i, 1);
      log.push({ method: req.method ?? '', path, status: f0.fake201 ? 201 : 0, at: Date.now() });
      if (f0.neverAnswer) return void req.resume();
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => res.writeHead(201, { 'docker-content-digest': `sha256:${createHash('sha256').update(Buffer.concat(chunks)).digest('hex')}` }).end());
      return;
    }
    if (f0 && f0.trickleMs !== undefined) {
      pending.splice(i, 1);
      const up = httpRequest({ host: uhost, port: Number(uport), method: req.method, path, headers: req.headers }, (ur) => {
        log.push({ method: req.method ?? '', path, status: -(ur.statusCode ?? 0), at: Date.now() });
        const chunks = [];
        ur.on('data', (c) => chunks.push(c));
        ur.on('end', () => {
          const body = Buffer.concat(chunks);
          res.writeHead(ur.statusCode ?? 502, ur.headers);
          let at = 0;
          const t = setInterval(() => {
            if (res.destroyed || at >= body.length) return void (clearInterval(t), res.end());
            res.write(body.subarray(at, at + 1));
            at++;
          }, f0.trickleMs);
          res.on('close', () => clearInterval(t));
        });
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
      return;
    }
    if (f0 && (f0.stallAfterHeaders || f0.endless || f0.truncateTo !== undefined || f0.closeDelimited)) {
      pending.splice(i, 1);
      const up = httpRequest({ host: uhost, port: Number(uport), method: req.method, path, headers: req.headers }, (ur) => {
        log.push({ method: req.method ?? '', path, status: -(ur.statusCode ?? 0), at: Date.now() });
        const headers = { ...ur.headers };
        if (f0.stallAfterHeaders) {
          res.writeHead(ur.statusCode ?? 502, headers);
          res.flushHeaders();
          ur.destroy();
          return; // nothing more, ever (the socket closes when the proxy stops)
        }
        if (f0.endless) {
          // The real body, then zeros without end.
          delete headers['content-length'];
          res.writeHead(ur.statusCode ?? 502, headers);
          const chunk = Buffer.alloc(64 * 1024);
          const pump = () => {
            while (!res.destroyed && res.write(chunk));
            if (!res.destroyed) res.once('drain', pump);
          };
          res.on('close', () => res.removeAllListeners('drain'));
          ur.on('data', (c) => res.write(c));
          ur.on('end', pump);
          return;
        }
        if (f0.truncateTo !== undefined) {
          const chunks = [];
          ur.on('data', (c) => chunks.push(c));
          ur.on('end', () => {
            const body = Buffer.concat(chunks).subarray(0, f0.truncateTo);
            res.writeHead(ur.statusCode ?? 502, { ...headers, 'content-length': String(body.length) });
            res.end(body);
          });
          return;
        }
        // Close-delimited: HTTP/1.1 without Content-Length or chunking, ended by closing.
        delete headers['content-length'];
        delete headers['transfer-encoding'];
        const sock = res.socket;
        res.detachSocket(sock);
        sock.write(`HTTP/1.1 ${ur.statusCode ?? 502} OK\r\n${Object.entries({ ...headers, connection: 'close' }).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : v}`).join('\r\n')}\r\n\r\n`);
        ur.on('data', (c) => sock.write(c));
        ur.on('end', () => sock.end());
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
      return;
    }
    if (i >= 0 && pending[i].dropAfterBytes !== undefined) {
      // Forward the answer's headers and first bytes, then drop the connection mid-body.
      const f = pending.splice(i, 1)[0];
      const up = httpRequest({ host: uhost, port: Number(uport), method: req.method, path, headers: req.headers }, (ur) => {
        log.push({ method: req.method ?? '', path, status: -(ur.statusCode ?? 0), at: Date.now() });
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        let sent = 0;
        ur.on('data', (c) => {
          if (sent >= f.dropAfterBytes) return;
          const part = c.subarray(0, f.dropAfterBytes - sent);
          sent += part.length;
          res.write(part);
          if (sent >= f.dropAfterBytes) {
            ur.destroy();
            res.socket?.destroy();
          }
        });
        // A body shorter than the cut passes whole.
        ur.on('end', () => res.end());
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
      return;
    }
    if (i >= 0) {
      const f = pending.splice(i, 1)[0];
      req.resume();
      log.push({ method: req.method ?? '', path, status: f.status ?? 500, at: Date.now() });
      if (f.noBody) return void res.writeHead(f.status ?? 500, { 'content-length': '0', ...(f.headers ?? {}) }).end();
      if (f.body !== undefined) return void res.writeHead(f.status ?? 500, { 'content-type': 'application/json', ...(f.headers ?? {}) }).end(JSON.stringify(f.body));
      res.writeHead(f.status ?? 500, { 'content-type': 'application/json', ...(f.headers ?? {}) }).end(JSON.stringify({ errors: [{ code: f.status === 429 ? 'TOOMANYREQUESTS' : 'UNKNOWN', message: 'injected fault' }] }));
      return;
    }
    const up = httpRequest({ host: uhost, port: Number(uport), method: req.method, path, headers: req.headers }, (ur) => {
      log.push({ method: req.method ?? '', path, status: ur.statusCode ?? 0, at: Date.now() });
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  const port = await freePort();
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return {
    addr: `127.0.0.1:${port}`,
    log,
    stop: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
