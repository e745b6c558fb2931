// What a Dockerfile's target stage is built on: the image its FROM chain starts from, as the
// frontend expands it (global ARGs, --build-arg, the TARGET* platform args). Used to read the
// base's layers while the build runs; anything this reading is not sure of answers "unknown"
// (undefined), never a guess: heredocs, a FROM --platform other than the target's, a name a build
// context replaces, an ARG without a value, `scratch`.
import type { Platform } from '../platform/platform.js';

interface Stage {
  readonly image: string;
  readonly name?: string;
  readonly platformFlag?: string;
}

/** `# escape=`` `: the parser directive that changes the line-continuation character. */
function escapeChar(lines: readonly string[]): string {
  for (const line of lines) {
    const m = /^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$/.exec(line.trim());
    if (!m) break; // directives come first, before any comment or instruction
    if (m[1]!.toLowerCase() === 'escape' && (m[2] === '`' || m[2] === '\\')) return m[2];
  }
  return '\\';
}

/** Instructions with their continuation lines joined, comments dropped. */
function instructions(text: string): string[] | undefined {
  const lines = text.split(/\r?\n/);
  const esc = escapeChar(lines);
  const out: string[] = [];
  let cur: string | undefined;
  for (const raw of lines) {
    const trimmed = raw.trim();
    if (trimmed.startsWith('#')) continue; // also inside a continued instruction, as the frontend does
    if (cur === undefined && trimmed === '') continue;
    const continued = trimmed.endsWith(esc);
    const body = continued ? trimmed.slice(0, -1) : trimmed;
    cur = cur === undefined ? body : `${cur} ${body}`;
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
        const given = o.buildArgs?.[name];
        // A platform ARG declared without a value keeps the value the frontend gives it.
        const value = given ?? (eq < 0 ? platformArgs[name] : expand(unquote(decl.slice(eq + 1)), vars));
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
    if (image.toLowerCase() === 'scratch' || o.contexts?.includes(image)) return undefined;
    return image;
  }
  return undefined;
}
