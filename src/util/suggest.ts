// "Did you mean": the closest of the valid words to a misspelt one, when it is close enough to
// be a typo (edit distance, case ignored), for fields of a file and values of flags.

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

export function closest(word: string, valid: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  let best: { v: string; d: number } | undefined;
  for (const v of valid) {
    const d = distance(w, v.toLowerCase());
    if (!best || d < best.d) best = { v, d };
  }
  // A third of the word may be wrong (one letter in short words), never the whole of it.
  return best && best.d <= Math.max(1, Math.floor(word.length / 3)) && best.d < word.length ? best.v : undefined;
}

/** " (did you mean "x"?)" or nothing. */
export function didYouMean(word: string, valid: readonly string[]): string {
  const c = closest(word, valid);
  return c ? ` (did you mean "${c}"?)` : '';
}
