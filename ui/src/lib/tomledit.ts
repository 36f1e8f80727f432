// Edits one `key = value` of a `[section]` in TOML text, keeping everything else
// (comments, order, other tables) as written. The Settings form writes through this;
// the raw text stays the source of truth.
import { parse } from "smol-toml";

export type TomlScalar = string | number | boolean | string[];

/** A value as TOML: strings as basic strings, arrays of strings inline. */
export function tomlLiteral(v: TomlScalar): string {
  if (Array.isArray(v)) return `[${v.map((s) => JSON.stringify(s)).join(", ")}]`;
  if (typeof v === "string") return JSON.stringify(v);
  return String(v);
}

/** Index of a `#` comment outside strings, or -1. */
function commentStart(line: string): number {
  let q: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (q) {
      if (c === "\\" && q === '"') i++;
      else if (c === q) q = null;
    } else if (c === '"' || c === "'") q = c;
    else if (c === "#") return i;
  }
  return -1;
}

function code(line: string): string {
  const i = commentStart(line);
  return (i < 0 ? line : line.slice(0, i)).trim();
}

/** Open-bracket balance of a line's code part (strings skipped). */
function bracketBalance(line: string): number {
  let n = 0;
  let q: string | null = null;
  const s = code(line);
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (q) {
      if (c === "\\" && q === '"') i++;
      else if (c === q) q = null;
    } else if (c === '"' || c === "'") q = c;
    else if (c === "[") n++;
    else if (c === "]") n--;
  }
  return n;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Sets (or with `undefined`, removes) `key` in `[section]`. Adds the key after the
 * section's last key, or the section at the end, when missing.
 */
export function setTomlKey(text: string, section: string, key: string, value: TomlScalar | undefined): string {
  const lines = text.split("\n");
  const header = new RegExp(`^\\[\\s*${escapeRe(section)}\\s*\\]$`);
  const start = lines.findIndex((l) => header.test(code(l)));
  if (start < 0) {
    if (value === undefined) return text;
    const block = `[${section}]\n${key} = ${tomlLiteral(value)}\n`;
    // Plain tables read best before the first array of tables ([[endpoint]]).
    const firstArray = lines.findIndex((l) => code(l).startsWith("[["));
    if (firstArray >= 0) {
      let at = firstArray;
      while (at > 0 && lines[at - 1].trimStart().startsWith("#")) at--; // keep its comment with it
      lines.splice(at, 0, ...block.split("\n"));
      return lines.join("\n");
    }
    const body = text.replace(/\s*$/, "");
    return `${body}${body ? "\n\n" : ""}${block}`;
  }
  let end = lines.length;
  for (let i = start + 1; i < lines.length; i++) {
    if (code(lines[i]).startsWith("[")) {
      // A multi-line array value also starts lines with "["; only headers have no "=" before.
      const prev = lines.slice(start + 1, i);
      const open = prev.reduce((n, l) => n + bracketBalance(l), 0);
      if (open <= 0) {
        end = i;
        break;
      }
    }
  }
  const keyRe = new RegExp(`^(\\s*)(${escapeRe(key)}|"${escapeRe(key)}")\\s*=`);
  for (let i = start + 1; i < end; i++) {
    const m = lines[i].match(keyRe);
    if (!m) continue;
    let last = i;
    let bal = bracketBalance(lines[i]);
    while (bal > 0 && last + 1 < end) bal += bracketBalance(lines[++last]);
    const ci = last === i ? commentStart(lines[i]) : -1;
    const comment = ci >= 0 ? `  ${lines[i].slice(ci)}` : "";
    const repl = value === undefined ? [] : [`${m[1]}${key} = ${tomlLiteral(value)}${comment}`];
    lines.splice(i, last - i + 1, ...repl);
    return lines.join("\n");
  }
  if (value === undefined) return text;
  let at = end;
  while (at > start + 1 && lines[at - 1].trim() === "") at--;
  lines.splice(at, 0, `${key} = ${tomlLiteral(value)}`);
  return lines.join("\n");
}

/** Parses TOML text: the document, or the parser's message. */
export function parseToml(text: string): { doc: Record<string, unknown> } | { error: string } {
  try {
    return { doc: parse(text) as Record<string, unknown> };
  } catch (e) {
    return { error: e instanceof Error ? e.message.split("\n")[0] : String(e) };
  }
}
