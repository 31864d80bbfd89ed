/**
 * Pretty-prints JSON by re-indenting its tokens, never by re-serialising parsed values: the
 * numbers and strings shown are the record's own characters (JSON.parse would round
 * 64-bit integers and normalise escapes — not acceptable on an evidence page).
 * Returns null when the text is not one valid JSON value.
 */
export function prettyJson(text: string, indent = 2): string | null {
  const trimmed = text.trim();
  if (trimmed === '' || (trimmed[0] !== '{' && trimmed[0] !== '[')) return null;
  try {
    JSON.parse(trimmed);
  } catch {
    return null;
  }
  let out = '';
  let depth = 0;
  const nl = (): string => '\n' + ' '.repeat(depth * indent);
  for (let i = 0; i < trimmed.length; i++) {
    const c = trimmed[i]!;
    if (c === '"') {
      let j = i + 1;
      while (j < trimmed.length && trimmed[j] !== '"') j += trimmed[j] === '\\' ? 2 : 1;
      out += trimmed.slice(i, j + 1);
      i = j;
    } else if (c === '{' || c === '[') {
      // keep empty containers on one line
      let j = i + 1;
      while (j < trimmed.length && /\s/.test(trimmed[j]!)) j++;
      if (trimmed[j] === (c === '{' ? '}' : ']')) {
        out += c + trimmed[j];
        i = j;
      } else {
        depth++;
        out += c + nl();
      }
    } else if (c === '}' || c === ']') {
      depth--;
      out += nl() + c;
    } else if (c === ',') {
      out += ',' + nl();
    } else if (c === ':') {
      out += ': ';
    } else if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      // insignificant whitespace between tokens
    } else {
      out += c;
    }
  }
  return out;
}
