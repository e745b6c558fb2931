// Signed and proven: `run --sign --key` signs each platform's image and the list with cosign and
// attaches crossbuild's proof as a signed attestation; the real cosign CLI checks the result, and
// `crossbuild verify --key` checks a whole list at once.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { scratchDir } from '../helpers/engine-setup.js';
import { cli, FIXTURES, REGISTRY, requireInfrastructure, ROOT, uniqueRepo } from '../helpers/env.js';
import { imageEntries, type Index } from '../helpers/oci.js';
import { skopeoRaw } from '../helpers/env.js';

const PROOF = 'https://crossbuild.dev/attestations/platform-proof/v1';
const COSIGN = execFileSync('bash', [join(ROOT, 'ci', 'engines.sh'), 'cosign'], { encoding: 'utf8' }).trim();
const password = 'cosign-Pass-8d2e';
const dir = scratchDir('cb-sign-');
const key = join(dir, 'cosign.key');
const pub = join(dir, 'cosign.pub');
const env = { CI: 'true', CROSSBUILD_COSIGN: COSIGN, COSIGN_PASSWORD: password };
const cosign = (args: string[]) => execa(COSIGN, args, { reject: false, env: { COSIGN_PASSWORD: password }, cwd: dir });

interface Report {
  ok: boolean;
  list: { digest: string; signed?: string } | null;
  logDir: string;
  platforms: { platform: string; digest: string; signed: string | null }[];
}

let repo: string;
let report: Report;
let output: string;

beforeAll(async () => {
  await requireInfrastructure();
  const g = await cosign(['generate-key-pair']);
  if (g.exitCode !== 0) throw new Error(`cosign generate-key-pair: ${g.stderr}`);
  repo = uniqueRepo('signed');
  const r = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', repo, '--sign', '--key', key, '--report', join(dir, 'report.json')], { env });
  output = r.stdout + r.stderr;
  if (r.exitCode !== 0) throw new Error(`run --sign failed: ${output}`);
  report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as Report;
});

describe('run --sign --key', () => {
  it('cosign verify accepts the list and each child; verify-attestation accepts each child\'s proof, naming its platform and counts', async () => {
    expect(report.list!.signed).toBe('https://crossbuild.dev/attestations/list-proof/v1');
    const list = await cosign(['verify', '--key', pub, '--insecure-ignore-tlog=true', '--allow-http-registry', `${repo}@${report.list!.digest}`]);
    expect(list.exitCode, list.stderr).toBe(0);
    for (const p of report.platforms) {
      expect(p.signed).toBe(PROOF);
      const v = await cosign(['verify', '--key', pub, '--insecure-ignore-tlog=true', '--allow-http-registry', `${repo}@${p.digest}`]);
      expect(v.exitCode, `${p.platform}: ${v.stderr}`).toBe(0);
      const a = await cosign(['verify-attestation', '--key', pub, '--type', PROOF, '--insecure-ignore-tlog=true', '--allow-http-registry', `${repo}@${p.digest}`]);
      expect(a.exitCode, `${p.platform}: ${a.stderr}`).toBe(0);
      const statement = JSON.parse(Buffer.from((JSON.parse(a.stdout.trim().split('\n')[0]!) as { payload: string }).payload, 'base64').toString()) as { subject: { digest: { sha256: string } }[]; predicate: { platform: string; files: { elfChecked: number; scanned: number }; uname: string } };
      expect(statement.subject[0]!.digest.sha256).toBe(p.digest.replace('sha256:', ''));
      expect(statement.predicate.platform).toBe(p.platform);
      expect(statement.predicate.files.elfChecked).toBeGreaterThan(0);
      expect(statement.predicate.uname).toBe({ 'linux/amd64': 'x86_64', 'linux/arm/v7': 'armv7l', 'linux/arm64': 'aarch64' }[p.platform]);
    }
  });

  it('crossbuild verify --key --require-attestation passes the whole list in one command', async () => {
    const r = await cli(['verify', `${repo}:multiarch`, '--static', '--key', pub, '--require-attestation'], { env });
    expect(r.exitCode, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/signature  PASS  the list sha256:[0-9a-f]{64} is signed by the key/);
    expect(r.stdout.match(/attestation +PASS +proof attestation signed by the key: linux\//g)).toHaveLength(3);
  });

  it('a re-pushed unsigned child, a list re-pointed at another image, a wrong key: exit 1 naming the child or the list', async () => {
    // The arm64 tag re-pushed with an image nobody signed.
    const copy = await execa('skopeo', ['copy', '--all', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${REGISTRY}/busybox:latest-arm64`, `docker://${repo}:multiarch-arm64`], { reject: false });
    expect(copy.exitCode, copy.stderr).toBe(0);
    const child = await cli(['verify', `${repo}:multiarch-arm64`, '--static', '--key', pub], { env });
    expect(child.exitCode).toBe(1);
    expect(child.stdout).toMatch(/signature +FAIL +linux\/arm64 \(sha256:[0-9a-f]{64}\) is not signed by the key/);
    // The list re-pointed: its arm64 entry now names that unsigned image.
    const spec = join(dir, 'repoint.yaml');
    const list = JSON.parse((await skopeoRaw(`${repo}:multiarch`))!.toString()) as Index;
    const keep = imageEntries(list.manifests).filter((m) => m.platform.architecture !== 'arm64');
    writeFileSync(spec, `image: ${repo}:repointed\nmanifests:\n${keep.map((m) => `  - image: ${repo}@${m.digest}\n`).join('')}  - image: ${repo}:multiarch-arm64\n`);
    expect((await cli(['manifest', 'push', 'from-spec', spec], { env })).exitCode).toBe(0);
    const repointed = await cli(['verify', `${repo}:repointed`, '--static', '--key', pub, '--require-attestation'], { env });
    expect(repointed.exitCode).toBe(1);
    expect(repointed.stdout).toMatch(/signature +FAIL +the list sha256:[0-9a-f]{64} is not signed by the key/);
    expect(repointed.stdout).toMatch(/linux\/arm64  FAIL[\s\S]*signature +FAIL +linux\/arm64 \(sha256:[0-9a-f]{64}\) is not signed by the key/);
    expect(repointed.stdout).toMatch(/linux\/amd64  PASS/);
    // Another key pair entirely.
    const other = scratchDir('cb-sign-other-');
    await execa(COSIGN, ['generate-key-pair'], { env: { COSIGN_PASSWORD: 'x' }, cwd: other });
    const wrong = await cli(['verify', `${repo}:multiarch`, '--static', '--key', join(other, 'cosign.pub')], { env });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stdout).toMatch(/signature +FAIL +the list sha256:[0-9a-f]{64} is not signed by the key/);
  });

  it('a signature made by the real cosign sign on an image built elsewhere is accepted', async () => {
    const elsewhere = `${uniqueRepo('cosigned')}:v1`;
    const copy = await execa('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${REGISTRY}/busybox:latest-arm64`, `docker://${elsewhere}`], { reject: false });
    expect(copy.exitCode, copy.stderr).toBe(0);
    const s = await cosign(['sign', '--key', key, '--tlog-upload=false', '--use-signing-config=false', '--allow-http-registry', '-y', elsewhere]);
    expect(s.exitCode, s.stderr).toBe(0);
    const r = await cli(['verify', elsewhere, '--static', '--key', pub], { env });
    expect(r.exitCode, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/signature +PASS +linux\/arm64 \(sha256:[0-9a-f]{64}\) is signed by the key/);
  });

  it("the key's bytes and its password appear in no output, log or report", () => {
    const keyLines = readFileSync(key, 'utf8').split('\n').filter((l) => l && !l.startsWith('-----'));
    const logs = readdirSync(report.logDir).map((f) => readFileSync(join(report.logDir, f), 'utf8')).join('\n');
    const everything = [output, readFileSync(join(dir, 'report.json'), 'utf8'), logs].join('\n');
    expect(everything).not.toContain(password);
    for (const l of keyLines) expect(everything).not.toContain(l);
  });

  it('a failed proof signs nothing', async () => {
    const bad = uniqueRepo('signed-bad');
    const r = await cli(['run', '--config', join(FIXTURES, 'mislabel', 'platforms.json'), '--image', bad, '--sign', '--key', key], { env });
    expect(r.exitCode).toBe(1);
    const tags = await fetch(`http://${REGISTRY}/v2/${bad.replace(`${REGISTRY}/`, '')}/tags/list`).then((x) => x.json() as Promise<{ tags?: string[] | null }>).catch(() => ({ tags: [] }));
    expect((tags.tags ?? []).filter((t) => t.startsWith('sha256-'))).toEqual([]);
  });

  it('a PKCS#8 PEM key (openssl) signs too, and given as env://VAR; the real cosign accepts both', async () => {
    const pem = join(dir, 'ec.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', pem]);
    const pemPub = join(dir, 'ec.pub');
    execFileSync('openssl', ['pkey', '-in', pem, '-pubout', '-out', pemPub]);
    for (const [name, keyArg, extra] of [['file', pem, {}], ['env', 'env://CB_TEST_KEY', { CB_TEST_KEY: readFileSync(pem, 'utf8') }]] as const) {
      const r2 = uniqueRepo(`signed-pem-${name}`);
      const run = await cli(['run', '--config', join(FIXTURES, 'app', 'platforms.json'), '--image', r2, '--platform', 'linux/arm64', '--sign', '--key', keyArg], { env: { ...env, ...extra } });
      expect(run.exitCode, run.stderr).toBe(0);
      const digest = /^Digest: (sha256:[0-9a-f]{64})/m.exec(run.stdout)![1];
      const v = await cosign(['verify', '--key', pemPub, '--insecure-ignore-tlog=true', '--allow-http-registry', `${r2}:multiarch@${digest}`]);
      expect(v.exitCode, v.stderr).toBe(0);
      const a = await cosign(['verify-attestation', '--key', pemPub, '--type', 'https://crossbuild.dev/attestations/list-proof/v1', '--insecure-ignore-tlog=true', '--allow-http-registry', `${r2}@${digest}`]);
      expect(a.exitCode, a.stderr).toBe(0);
      expect(run.stdout + run.stderr).not.toContain(readFileSync(pem, 'utf8').split('\n')[1]!);
    }
  });
});
