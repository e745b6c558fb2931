// platforms.json as people edit it: JSON with // and /* */ comments (as tsconfig.json and VS
// Code's settings take it), read by a small parser of our own so that every mistake — a trailing
// comma, a missing quote, a key given twice — is one message with its line and column. Node's
// JSON.parse names no position for some of these, and silently keeps the last of two equal keys.

export class JsonSyntaxError extends Error {
  constructor(
    readonly problem: string,
    readonly line: number,
    readonly column: number,
    after = '',
  ) {
    super(`${problem} at line ${line}, column ${column}${after}`);
  }
}

export function parseJsonc(text: string): unknown {
  let i = 0;
  const at = (pos: number): [number, number] => {
    const before = text.slice(0, pos);
    const line = before.split('\n').length;
    return [line, pos - before.lastIndexOf('\n')];
  };
  const fail = (problem: string, pos = i, after = ''): never => {
    const [line, column] = at(pos);
    throw new JsonSyntaxError(problem, line, column, after);
  };
  const shown = (pos: number) => (pos >= text.length ? 'the end of the file' : `"${text[pos]}"`);

  const skip = () => {
    for (;;) {
      while (i < text.length && /[ \t\r\n\uFEFF]/.test(text[i]!)) i++;
      if (text.startsWith('//', i)) {
        while (i < text.length && text[i] !== '\n') i++;
      } else if (text.startsWith('/*', i)) {
        const end = text.indexOf('*/', i + 2);
        if (end < 0) fail('a /* comment is never closed');
        i = end + 2;
      } else return;
    }
  };

  const string = (): string => {
    const start = i++;
    let out = '';
    while (i < text.length) {
      const c = text[i]!;
      if (c === '"') {
        i++;
        return out;
      }
      if (c === '\n') fail('a string runs to the end of the line (a closing " is missing)', start);
      if (c === '\\') {
        const e = text[i + 1];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e !== undefined && simple[e] !== undefined) {
          out += simple[e];
          i += 2;
        } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
          i += 6;
        } else fail(`"\\${e ?? ''}" is not a JSON escape (valid: \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)`);
        continue;
      }
      if (c < ' ') fail('a control character inside a string (write it as an escape such as \\t)');
      out += c;
      i++;
    }
    return fail('a string is never closed (a closing " is missing)', start);
  };

  const value = (): unknown => {
    skip();
    const c = text[i];
    if (c === '{') return object();
    if (c === '[') return array();
    if (c === '"') return string();
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (m && m[0] !== '-') {
      i += m[0].length;
      return Number(m[0]);
    }
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    if (c === "'") return fail("strings take double quotes in JSON, not '");
    if (c !== undefined && /[A-Za-z_]/.test(c)) return fail(`a bare word where a value belongs (strings take double quotes)`);
    return fail(`expected a value, found ${shown(i)}`);
  };

  const object = (): Record<string, unknown> => {
    i++;
    const out: Record<string, unknown> = {};
    const seen = new Map<string, number>();
    skip();
    if (text[i] === '}') {
      i++;
      return out;
    }
    for (;;) {
      skip();
      if (text[i] !== '"') fail(text[i] === '}' ? 'a trailing comma before }' : `expected a key in double quotes, found ${shown(i)}`);
      const keyAt = i;
      const key = string();
      if (seen.has(key)) {
        const [l, col] = at(seen.get(key)!);
        fail('a key appears twice in one object', keyAt, ` ("${key}", first at line ${l}, column ${col}; JSON would silently keep the last); remove one`);
      }
      seen.set(key, keyAt);
      skip();
      if (text[i] !== ':') fail(`expected : after "${key}", found ${shown(i)}`);
      i++;
      Object.defineProperty(out, key, { value: value(), enumerable: true, writable: true, configurable: true });
      skip();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === '}') {
        i++;
        return out;
      }
      fail(`expected , or } after the value of "${key}", found ${shown(i)}`);
    }
  };

  const array = (): unknown[] => {
    i++;
    const out: unknown[] = [];
    skip();
    if (text[i] === ']') {
      i++;
      return out;
    }
    for (;;) {
      skip();
      if (text[i] === ']') fail('a trailing comma before ]');
      out.push(value());
      skip();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === ']') {
        i++;
        return out;
      }
      fail(`expected , or ] after an item, found ${shown(i)}`);
    }
  };

  const v = value();
  skip();
  if (i < text.length) fail(`unexpected ${shown(i)} after the end of the document`);
  return v;
}
