// Validate what we write against the official OCI image-spec schemas, as Debian's
// golang-github-opencontainers-image-spec-dev ships them (ci/provision.sh installs it).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv-draft-04';

export const OCI_SCHEMA_DIR = process.env.CROSSBUILD_OCI_SCHEMA_DIR ?? '/usr/share/gocode/src/github.com/opencontainers/image-spec/schema';

/**
 * The files refer to each other by file name; their nested `id`s would move the base URI, so drop
 * them. Debian's copy names the draft-04 meta-schema by https, which Ajv knows by http: drop that
 * too (draft-04 is what ajv-draft-04 assumes).
 */
function stripIds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(stripIds);
  if (node && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) {
      if ((k === 'id' || k === '$schema') && typeof v === 'string') continue;
      out[k] = stripIds(v);
    }
    return out;
  }
  return node;
}

let ajv: Ajv | undefined;

function load(): Ajv {
  if (!existsSync(join(OCI_SCHEMA_DIR, 'image-index-schema.json'))) {
    throw new Error(`no OCI image-spec schemas in ${OCI_SCHEMA_DIR}: apt-get install golang-github-opencontainers-image-spec-dev (bash ci/provision.sh does)`);
  }
  const a = new Ajv({ allErrors: true, strict: false, formats: { uri: true } });
  for (const f of readdirSync(OCI_SCHEMA_DIR).filter((n) => n.endsWith('.json'))) {
    a.addSchema(stripIds(JSON.parse(readFileSync(join(OCI_SCHEMA_DIR, f), 'utf8'))) as object, f);
  }
  return a;
}

export function validateOci(schemaFile: 'image-index-schema.json' | 'image-manifest-schema.json' | 'config-schema.json', doc: unknown): string[] {
  ajv ??= load();
  const validate = ajv.getSchema(schemaFile);
  if (!validate) throw new Error(`schema ${schemaFile} not loaded from ${OCI_SCHEMA_DIR}`);
  if (validate(doc)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`);
}
