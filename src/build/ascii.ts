// V8 keeps a module's source for as long as the module lives, in one byte per character when
// every character is ASCII and in two otherwise: one `✓` in a template literal doubles the
// memory a megabyte-sized chunk holds. \uXXXX means the same character in strings, templates,
// regular expressions, identifiers and comments, so generated code is written in ASCII.

/** The JavaScript source with every non-ASCII UTF-16 unit written as a \uXXXX escape. */
export function asciiOnly(js: string): string {
  return js.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
