// What the process is waiting for, by name: a last-resort report when it ends with work undone
// (a stream that never ended, a promise nothing settles) instead of exiting in silence.
const inflight = new Map<number, string>();
let next = 0;

/** Name an operation for as long as it runs. */
export async function tracked<T>(what: string, op: () => Promise<T>): Promise<T> {
  const id = next++;
  inflight.set(id, what);
  try {
    return await op();
  } finally {
    inflight.delete(id);
  }
}

export function inFlight(): string[] {
  return [...inflight.values()];
}
