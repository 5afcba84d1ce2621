/**
 * Where a JSON value breaks a JSON Schema, for tests that check constrained output: the keywords Tessera's grammars
 * enforce (type, properties, required, additionalProperties, items, enum, const, min/maxLength, min/maxItems,
 * anyOf/oneOf, $ref to $defs). Returns one line per violation; an empty list means valid. A keyword outside that set
 * is reported as a violation too, so a test never passes by not checking.
 */
export function schemaViolations(schema: unknown, value: unknown, path = "$", root: unknown = schema): string[] {
  if (schema === true || (typeof schema === "object" && schema !== null && Object.keys(schema).length === 0)) return [];
  const s = schema as Record<string, unknown>;
  const out: string[] = [];
  const known = new Set(["type", "properties", "required", "additionalProperties", "items", "enum", "const", "minLength", "maxLength", "minItems", "maxItems", "anyOf", "oneOf", "$ref", "$defs", "description", "title"]);
  for (const key of Object.keys(s)) if (!known.has(key)) out.push(`${path}: keyword ${key} is not checked by schemaViolations`);
  if (typeof s.$ref === "string") {
    const name = s.$ref.replace(/^#\/\$defs\//, "");
    return [...out, ...schemaViolations((root as { $defs: Record<string, unknown> }).$defs[name], value, path, root)];
  }
  const branches = (s.anyOf ?? s.oneOf) as unknown[] | undefined;
  if (branches && !branches.some((b) => schemaViolations(b, value, path, root).length === 0)) out.push(`${path}: matches no branch`);
  if (s.const !== undefined && JSON.stringify(s.const) !== JSON.stringify(value)) out.push(`${path}: is not ${JSON.stringify(s.const)}`);
  if (Array.isArray(s.enum) && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) out.push(`${path}: not in enum`);
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    const actual = value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
    const ok = types.some((t) => t === actual || (t === "integer" && Number.isInteger(value)) || (t === "number" && actual === "number"));
    if (!ok) return [...out, `${path}: is ${actual}, not ${types.join("|")}`];
  }
  if (typeof value === "string") {
    if (typeof s.minLength === "number" && [...value].length < s.minLength) out.push(`${path}: shorter than ${s.minLength}`);
    if (typeof s.maxLength === "number" && [...value].length > s.maxLength) out.push(`${path}: longer than ${s.maxLength}`);
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === "number" && value.length < s.minItems) out.push(`${path}: fewer than ${s.minItems} items`);
    if (typeof s.maxItems === "number" && value.length > s.maxItems) out.push(`${path}: more than ${s.maxItems} items`);
    if (s.items !== undefined) value.forEach((v, i) => out.push(...schemaViolations(s.items, v, `${path}[${i}]`, root)));
  }
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, unknown>;
    for (const r of (s.required ?? []) as string[]) if (!(r in obj)) out.push(`${path}: missing ${r}`);
    for (const [k, v] of Object.entries(obj)) {
      if (k in props) out.push(...schemaViolations(props[k], v, `${path}.${k}`, root));
      else if (s.additionalProperties === false) out.push(`${path}: unexpected property ${k}`);
      else if (typeof s.additionalProperties === "object") out.push(...schemaViolations(s.additionalProperties, v, `${path}.${k}`, root));
    }
  }
  return out;
}
