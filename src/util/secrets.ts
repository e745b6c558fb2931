// Every password, token and auth header crossbuild handles is registered here, and everything it
// prints (errors, logs, reports) goes through scrub(), so a secret can't leak by accident.
const secrets = new Set<string>();

export function registerSecret(value: string | undefined): void {
  // Very short strings would scrub ordinary words; nothing real is that short.
  if (value && value.length >= 4) {
    secrets.add(value);
    // Basic auth carries user:password base64-encoded; scrub that encoding too.
    secrets.add(Buffer.from(value).toString('base64'));
  }
}

export function scrub(text: string): string {
  let out = text;
  for (const s of secrets) {
    if (out.includes(s)) out = out.split(s).join('***');
  }
  // Authorization headers that slipped through from libraries.
  return out.replace(/(authorization:\s*(?:basic|bearer)\s+)[^\s"']+/gi, '$1***');
}
