// Real distribution registries for tests (the `docker-registry` binary), in the configurations
// users meet: plain HTTP, TLS with Basic auth, and token auth with a token service on loopback.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { randomBytes, sign, X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { scratchDir } from './engine-setup.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface Pki {
  readonly dir: string;
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
}

/** A CA and a server certificate for 127.0.0.1/localhost, made with openssl. */
export async function makePki(): Promise<Pki> {
  const dir = scratchDir('cb-pki-');
  const f = (n: string) => join(dir, n);
  await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=crossbuild test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await execa('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1']);
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  await execa('openssl', ['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.crt'), '-days', '2', '-extfile', f('ext.cnf')]);
  return { dir, caCert: f('ca.crt'), serverCert: f('server.crt'), serverKey: f('server.key') };
}

export interface TestRegistry {
  readonly addr: string;
  readonly port: number;
  readonly dir: string;
  stop(): Promise<void>;
}

export interface RegistryAuth {
  htpasswd?: { user: string; password: string };
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
}

export async function startRegistry(opts: { tls?: Pki; auth?: RegistryAuth } = {}): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'cb-registry-'));
  const port = await freePort();
  const lines = ['version: 0.1', 'log:', '  level: error', 'storage:', '  filesystem:', `    rootdirectory: ${dir}/data`, '  delete:', '    enabled: true', 'http:', `  addr: 127.0.0.1:${port}`];
  if (opts.tls) lines.push('  tls:', `    certificate: ${opts.tls.serverCert}`, `    key: ${opts.tls.serverKey}`);
  if (opts.auth?.htpasswd) {
    const r = await execa('htpasswd', ['-Bbn', opts.auth.htpasswd.user, opts.auth.htpasswd.password]);
    writeFileSync(join(dir, 'htpasswd'), `${r.stdout.trim()}\n`);
    lines.push('auth:', '  htpasswd:', '    realm: crossbuild-test', `    path: ${join(dir, 'htpasswd')}`);
  }
  if (opts.auth?.token) {
    const t = opts.auth.token;
    lines.push('auth:', '  token:', `    realm: ${t.realm}`, `    service: ${t.service}`, `    issuer: ${t.issuer}`, `    rootcertbundle: ${t.rootCertBundle}`);
  }
  writeFileSync(join(dir, 'config.yml'), `${lines.join('\n')}\n`);
  const proc: ResultPromise = execa('docker-registry', ['serve', join(dir, 'config.yml')], { reject: false, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const scheme = opts.tls ? 'https' : 'http';
  for (let i = 0; i < 80; i++) {
    const ok = await execa('curl', ['-sk', '-o', '/dev/null', '-w', '%{http_code}', `${scheme}://127.0.0.1:${port}/v2/`], { reject: false });
    if (ok.stdout === '200' || ok.stdout === '401') break;
    if (i === 79) throw new Error(`registry did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    addr: `127.0.0.1:${port}`,
    port,
    dir,
    stop: async () => {
      proc.kill('SIGTERM');
      await proc;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Put a CA where Docker (and crossbuild) look for it: /etc/docker/certs.d/<host:port>/ca.crt. */
export function installCa(addr: string, caCert: string): () => void {
  const d = `/etc/docker/certs.d/${addr}`;
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'ca.crt'), readFileSync(caCert));
  return () => rmSync(d, { recursive: true, force: true });
}

export interface TokenServer {
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  readonly certFile: string;
  /** Every token request: account and scopes asked for. */
  readonly requests: { account: string | undefined; scopes: string[]; authorized: boolean }[];
  stop(): Promise<void>;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/**
 * A token service as distribution's `auth: token` expects: Basic-authenticated GET with
 * service and scope, answering a JWT signed by a key whose certificate is the registry's
 * rootcertbundle (sent in the x5c header).
 */
export async function startTokenServer(users: Record<string, string>, pki: Pki): Promise<TokenServer> {
  const key = createPrivateKey(readFileSync(pki.serverKey));
  const certPem = readFileSync(pki.serverCert, 'utf8');
  const der = new X509Certificate(certPem).raw;
  const service = 'crossbuild-test-registry';
  const issuer = 'crossbuild-test-issuer';
  const requests: TokenServer['requests'] = [];
  const server: Server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const scopes = url.searchParams.getAll('scope');
    let account: string | undefined;
    let authorized = false;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const [u, ...p] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
      account = u;
      if (u !== undefined && users[u] === p.join(':')) authorized = true;
      else {
        requests.push({ account, scopes, authorized: false });
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"invalid credentials"}');
        return;
      }
    }
    requests.push({ account, scopes, authorized });
    const access = authorized
      ? scopes.flatMap((s) => {
          const [type, name, actions] = s.split(':');
          return type && name && actions ? [{ type, name, actions: actions.split(',') }] : [];
        })
      : [];
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [der.toString('base64')] };
    const claims = { iss: issuer, sub: account ?? '', aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const token = `${signingInput}.${b64url(sign('sha256', Buffer.from(signingInput), key))}`;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, access_token: token, expires_in: 300 }));
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { realm: `http://127.0.0.1:${port}/token`, service, issuer, certFile: pki.serverCert, requests, stop: () => new Promise((r) => server.close(() => r())) };
}

export { startFaultProxy, type Fault, type FaultProxy } from './fault-proxy.mjs';
