// What a Dockerfile's target stage is built on: the image its FROM chain starts from, as the
// frontend expands it (global ARGs, --build-arg, the TARGET* platform args). Used to read the
// base's layers while the build runs; anything this reading is not sure of answers "unknown"
// (undefined), never a guess: heredocs, a FROM --platform other than the target's, a name a build
// context replaces, an ARG without a value, `scratch`.
import { manifestReference, parseReference } from '../oci/reference.js';
import type { Platform } from '../platform/platform.js';

interface Stage {
  readonly image: string;
  readonly name?: string;
  readonly platformFlag?: string;
}

/** The parser directives (`# escape=``, `# syntax=…`): they come first, before any comment or instruction. */
function directives(lines: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of lines) {
    const m = /^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$/.exec(line.trim());
    if (!m) break;
    out.set(m[1]!.toLowerCase(), m[2]!);
  }
  return out;
}

/** A `# syntax=` frontend that reads Dockerfiles (docker/dockerfile, -upstream, any tag or digest). */
const DOCKERFILE_FRONTEND = /^(?:docker\.io\/)?docker\/dockerfile(?:-upstream)?(?:[:@].*)?$/;

/** Instructions with their continuation lines joined (as the frontend joins them), comments and empty lines dropped. */
function instructions(text: string): string[] | undefined {
  const lines = text.split(/\r?\n/);
  const given = directives(lines);
  const syntax = given.get('syntax');
  if (syntax !== undefined && !DOCKERFILE_FRONTEND.test(syntax)) return undefined; // another language
  const esc = given.get('escape') === '`' ? '`' : '\\';
  const out: string[] = [];
  let cur: string | undefined;
  for (const raw of lines) {
    const trimmed = raw.trim();
    // Also inside a continued instruction, as the frontend does.
    if (trimmed.startsWith('#') || trimmed === '') continue;
    const line = raw.replace(/\s+$/, '');
    const continued = line.endsWith(esc);
    const body = continued ? line.slice(0, -1) : line;
    cur = (cur ?? '') + body;
    if (!continued) {
      out.push(cur.trim());
      cur = undefined;
    }
  }
  if (cur !== undefined && cur.trim() !== '') out.push(cur.trim());
  // A heredoc's lines are not instructions; this reading does not follow them.
  if (out.some((i) => /^(RUN|COPY|ADD)\s.*<<-?["']?[A-Za-z_]/i.test(i))) return undefined;
  return out;
}

/** `$X`, `${X}`, `${X:-word}`, `${X:+word}` from `vars`; undefined where a name has no value. */
export function expand(word: string, vars: ReadonlyMap<string, string>): string | undefined {
  let failed = false;
  const out = word.replace(/\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g, (_m, braced: string | undefined, op: string | undefined, alt: string | undefined, bare: string | undefined) => {
    const name = (braced ?? bare)!;
    const v = vars.get(name);
    if (op === ':-') return v !== undefined && v !== '' ? v : (alt ?? '');
    if (op === ':+') return v !== undefined && v !== '' ? (alt ?? '') : '';
    if (v === undefined) failed = true;
    return v ?? '';
  });
  if (failed || out.includes('$')) return undefined;
  return out;
}

function unquote(v: string): string {
  return v.length >= 2 && ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) ? v.slice(1, -1) : v;
}

/** A build context's name against a FROM: as written, or as the same image (`name::platform` keys too). */
function sameName(context: string, image: string): boolean {
  const name = context.split('::')[0]!;
  if (name === image) return true;
  try {
    const norm = (x: string) => {
      const r = parseReference(x);
      return `${r.registry}/${r.repository}@${manifestReference(r)}`;
    };
    return norm(name) === norm(image);
  } catch {
    return false;
  }
}

export interface BaseOptions {
  readonly platform: Platform;
  readonly buildArgs?: Readonly<Record<string, string>>;
  readonly target?: string;
  /** Names given by --build-context: a FROM of one of them is not the registry's image. */
  readonly contexts?: readonly string[];
}

/**
 * The image reference (as written, expanded) that the target stage — the last, or `target` —
 * starts from, following stages built on stages. Undefined where it cannot be said for sure.
 */
export function baseImage(text: string, o: BaseOptions): string | undefined {
  const ins = instructions(text);
  if (!ins) return undefined;
  const p = o.platform;
  const platformArgs: Record<string, string> = {
    TARGETPLATFORM: `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`,
    TARGETOS: p.os,
    TARGETARCH: p.architecture,
    TARGETVARIANT: p.variant ?? '',
  };
  const vars = new Map<string, string>(Object.entries(platformArgs));
  const stages: Stage[] = [];
  for (const line of ins) {
    const [keyword = '', ...rest] = line.split(/\s+/);
    const kw = keyword.toUpperCase();
    if (kw === 'ARG' && stages.length === 0) {
      // Global ARGs: a --build-arg sets one only where it is declared.
      for (const decl of rest) {
        const eq = decl.indexOf('=');
        const name = eq < 0 ? decl : decl.slice(0, eq);
        const given = o.buildArgs !== undefined && Object.hasOwn(o.buildArgs, name) ? o.buildArgs[name] : undefined;
        // A platform ARG declared without a value keeps the value the frontend gives it.
        const value = given ?? (eq < 0 ? (Object.hasOwn(platformArgs, name) ? platformArgs[name] : undefined) : expand(unquote(decl.slice(eq + 1)), vars));
        if (value === undefined) vars.delete(name);
        else vars.set(name, value);
      }
    } else if (kw === 'FROM') {
      const flags = rest.filter((w) => w.startsWith('--'));
      const words = rest.filter((w) => !w.startsWith('--'));
      const platformFlag = flags.find((f) => f.toLowerCase().startsWith('--platform='))?.slice('--platform='.length);
      if (flags.some((f) => !f.toLowerCase().startsWith('--platform='))) return undefined;
      if (words.length !== 1 && !(words.length === 3 && words[1]!.toLowerCase() === 'as')) return undefined;
      stages.push({ image: words[0]!, ...(words.length === 3 ? { name: words[2]! } : {}), ...(platformFlag !== undefined ? { platformFlag } : {}) });
    }
  }
  if (stages.length === 0) return undefined;
  let i = o.target !== undefined ? stages.findIndex((s) => s.name?.toLowerCase() === o.target!.toLowerCase()) : stages.length - 1;
  for (let hops = 0; i >= 0 && hops <= stages.length; hops++) {
    const s = stages[i]!;
    if (s.platformFlag !== undefined && expand(s.platformFlag, vars) !== platformArgs.TARGETPLATFORM) return undefined;
    const image = expand(s.image, vars);
    if (image === undefined || image === '') return undefined;
    // A stage built on an earlier one (by its name, as the frontend matches it).
    const prev = stages.findIndex((x, j) => j < i && x.name !== undefined && x.name.toLowerCase() === image.toLowerCase());
    if (prev >= 0) {
      i = prev;
      continue;
    }
    if (image.toLowerCase() === 'scratch' || o.contexts?.some((c) => sameName(c, image))) return undefined;
    return image;
  }
  return undefined;
}
