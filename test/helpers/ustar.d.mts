export function ustarHeader(name: string, size: number, opts?: { typeflag?: string }): Buffer;
