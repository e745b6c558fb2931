// Validate what we write against the official OCI image-spec schemas in ../shared/oci-schemas.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Ajv from 'ajv-draft-04';

export const OCI_SCHEMA_DIR = resolve(__dirname, '..', '..', '..', 'shared', 'oci-schemas');

/** The files refer to each other by file name; their nested `id`s would move the base URI, so drop them. */
function stripIds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(stripIds);
  if (node && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) {
      if (k === 'id' && typeof v === 'string') continue;
      out[k] = stripIds(v);
    }
    return out;
  }
  return node;
}

let ajv: Ajv | undefined;

function load(): Ajv {
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
