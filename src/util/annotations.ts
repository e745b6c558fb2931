// GitHub Actions workflow commands (`::error title=…::message`), so failures and warnings show
// as annotations on the run. Written to stderr: stdout stays the report (--json). Only under
// GITHUB_ACTIONS=true.

function escapeData(s: string): string {
  return s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

function escapeProperty(s: string): string {
  return escapeData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

export function annotation(kind: 'error' | 'warning' | 'notice', title: string, message: string): string {
  return `::${kind} title=${escapeProperty(title)}::${escapeData(message)}\n`;
}

export function inGithubActions(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.GITHUB_ACTIONS === 'true';
}

/** Write annotations when running under GitHub Actions; nothing elsewhere. */
export function annotate(items: readonly { kind: 'error' | 'warning'; title: string; message: string }[], write: (s: string) => void = (s) => process.stderr.write(s)): void {
  if (!inGithubActions()) return;
  for (const i of items) write(annotation(i.kind, i.title, i.message));
}
