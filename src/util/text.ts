// User input echoed back (errors, plans, logs) must not drive the terminal: control characters
// are shown escaped, as JSON would show them.
export function escapeControl(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => (c === '\t' ? '\\t' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

/** At most this much of any one echoed value; the rest is counted, not printed. */
export const ECHO_LIMIT = 2000;

/**
 * Text for a terminal or a log: control characters escaped (newlines and tabs kept when
 * `multiline`), each line cut at `limit` characters with "… N more bytes".
 */
export function printable(text: string, o: { multiline?: boolean; limit?: number } = {}): string {
  const limit = o.limit ?? ECHO_LIMIT;
  const cut = (line: string): string => {
    const esc = escapeControl(line);
    return esc.length <= limit ? esc : `${esc.slice(0, limit)}… ${Buffer.byteLength(esc.slice(limit))} more bytes`;
  };
  return o.multiline ? text.split('\n').map((l) => cut(l.replace(/\t/g, '  '))).join('\n') : cut(text);
}
