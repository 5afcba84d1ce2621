import type { GbnfJsonSchema } from "node-llama-cpp";

/**
 * A client's JSON Schema → the subset node-llama-cpp 3.22 compiles to a grammar (its `GbnfJsonSchema`). Pure.
 *
 * The grammar must only ever allow values the client's schema accepts; it may allow fewer. So:
 * - keywords that only narrow what the grammar already emits are honoured by construction and dropped: `required`
 *   (the grammar writes every declared property), `propertyNames`/`patternProperties` when no extra properties are
 *   allowed, annotations (`title`, `default`, `examples`, …);
 * - `anyOf` becomes `oneOf` (a grammar cannot tell them apart, and a value valid for one branch is valid for `anyOf`),
 *   a one-element `allOf` is inlined, `type: [...]` with object or array becomes a `oneOf`, `definitions` becomes
 *   `$defs`;
 * - keywords the grammar cannot enforce (`pattern`, `minimum`, `multipleOf`, `uniqueItems`, other string formats, …)
 *   make a strict schema fail, naming the keyword and where it is; a non-strict one (OpenAI's "best effort") is
 *   generated without them, which is what OpenAI promises for `strict: false`.
 */
export type GbnfConversion = { ok: true; schema: GbnfJsonSchema } | { ok: false; path: string; keyword: string };

const ANNOTATIONS = new Set(["title", "description", "$schema", "$id", "$comment", "default", "examples", "deprecated", "readOnly", "writeOnly", "nullable"]);
const NARROWED_BY_GRAMMAR = new Set(["required", "dependentRequired"]);
const FORMATS = new Set(["date-time", "time", "date"]);
const BASIC_TYPES = new Set(["string", "number", "integer", "boolean", "null"]);

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const isLiteral = (v: unknown) => v === null || ["string", "number", "boolean"].includes(typeof v);

class Unsupported extends Error {
  constructor(
    readonly path: string,
    readonly keyword: string,
  ) {
    super(`${keyword} at ${path || "the root"}`);
  }
}

/** Any JSON value, as node-llama-cpp can spell it (an array without `items` may hold anything). */
const ANY: GbnfJsonSchema = { oneOf: [{ type: ["string", "number", "boolean", "null"] }, { type: "object", additionalProperties: true }, { type: "array" }] };

export function toGbnfJsonSchema(schema: Json, options: { strict: boolean }): GbnfConversion {
  const join = (path: string, key: string | number) => (path ? `${path}.${key}` : String(key));
  const unsupported = (path: string, keyword: string): null => {
    if (options.strict) throw new Unsupported(path, keyword);
    return null;
  };

  function convertMap(map: unknown, path: string): Record<string, GbnfJsonSchema> {
    const out: Record<string, GbnfJsonSchema> = {};
    for (const [name, sub] of Object.entries(map as Json)) out[name] = convert(sub, join(path, name));
    return out;
  }

  function convert(node: unknown, path: string): GbnfJsonSchema {
    if (node === true) return ANY;
    if (node === false) throw new Unsupported(path, "false");
    const s = node as Json;
    const defs = {
      ...(isObject(s.definitions) ? convertMap(s.definitions, join(path, "definitions")) : {}),
      ...(isObject(s.$defs) ? convertMap(s.$defs, join(path, "$defs")) : {}),
    };
    const withDefs = (out: Json): GbnfJsonSchema => (Object.keys(defs).length > 0 ? { ...out, $defs: defs } : out) as GbnfJsonSchema;
    const description = typeof s.description === "string" ? { description: s.description } : {};

    if (typeof s.$ref === "string") {
      const m = /^#\/(\$defs|definitions)\/([^/]+)$/.exec(s.$ref);
      if (!m) throw new Unsupported(join(path, "$ref"), `$ref ${s.$ref}`);
      return withDefs({ $ref: `#/$defs/${m[2]}`, ...description });
    }
    if (s.const !== undefined) {
      if (!isLiteral(s.const)) throw new Unsupported(join(path, "const"), "const with an object or array value");
      return { const: s.const as string, ...description };
    }
    if (Array.isArray(s.enum)) {
      // Members of another type than `type` allows could never validate: left out (narrowing).
      const declared = Array.isArray(s.type) ? (s.type as string[]) : typeof s.type === "string" ? [s.type] : undefined;
      const literals = s.enum.filter((v) => isLiteral(v) && (!declared || declared.includes(jsonType(v)) || (declared.includes("number") && typeof v === "number")));
      if (literals.length === 0) throw new Unsupported(join(path, "enum"), "enum without a literal of the declared type");
      return { enum: literals as string[], ...description };
    }
    const branches = (Array.isArray(s.anyOf) ? s.anyOf : Array.isArray(s.oneOf) ? s.oneOf : undefined) as unknown[] | undefined;
    if (branches) {
      const key = Array.isArray(s.anyOf) ? "anyOf" : "oneOf";
      return withDefs({ oneOf: branches.map((b, i) => convert(b, join(join(path, key), i))), ...description });
    }
    if (Array.isArray(s.allOf)) {
      if (s.allOf.length !== 1) throw new Unsupported(join(path, "allOf"), "allOf with several schemas");
      return convert({ ...s, allOf: undefined, ...(s.allOf[0] as Json) }, join(path, "allOf.0"));
    }
    for (const key of Object.keys(s)) checkKeyword(s, key, path);

    let types = (Array.isArray(s.type) ? s.type : s.type === undefined ? inferTypes(s) : [s.type]) as string[];
    if (types.length === 0) return withDefs(ANY as Json);
    if (types.length > 1 && types.some((t) => !BASIC_TYPES.has(t))) {
      return withDefs({ oneOf: types.map((t) => convert({ ...s, type: t, $defs: undefined, definitions: undefined }, path)), ...description });
    }
    if (types.length > 1) return withDefs({ type: types, ...description });
    const type = types[0]!;
    if (type === "object") {
      const out: Json = { type: "object", ...description };
      if (isObject(s.properties)) out.properties = convertMap(s.properties, join(path, "properties"));
      if (s.additionalProperties === true) out.additionalProperties = true;
      else if (isObject(s.additionalProperties)) out.additionalProperties = convert(s.additionalProperties, join(path, "additionalProperties"));
      else if (s.additionalProperties === undefined && !isObject(s.properties)) out.additionalProperties = true; // a bare {type:object}
      if (typeof s.minProperties === "number") out.minProperties = s.minProperties;
      if (typeof s.maxProperties === "number") out.maxProperties = s.maxProperties;
      return withDefs(out);
    }
    if (type === "array") {
      const out: Json = { type: "array", ...description };
      if (s.items !== undefined) out.items = convert(s.items, join(path, "items"));
      if (Array.isArray(s.prefixItems)) out.prefixItems = s.prefixItems.map((p, i) => convert(p, join(join(path, "prefixItems"), i)));
      if (typeof s.minItems === "number") out.minItems = s.minItems;
      if (typeof s.maxItems === "number") out.maxItems = s.maxItems;
      return withDefs(out);
    }
    if (type === "string") {
      if (typeof s.format === "string" && FORMATS.has(s.format)) return { type: "string", format: s.format as "date", ...description };
      const out: Json = { type: "string", ...description };
      if (typeof s.minLength === "number") out.minLength = s.minLength;
      if (typeof s.maxLength === "number") out.maxLength = s.maxLength;
      return out as GbnfJsonSchema;
    }
    return { type: type as "number", ...description };
  }

  /** Refuses (strict) or lets drop (best effort) a keyword this converter does not carry into the grammar. */
  function checkKeyword(s: Json, key: string, path: string): void {
    if (ANNOTATIONS.has(key) || NARROWED_BY_GRAMMAR.has(key) || s[key] === undefined) return;
    switch (key) {
      case "type":
      case "properties":
      case "items":
      case "prefixItems":
      case "$defs":
      case "definitions":
      case "minProperties":
      case "maxProperties":
      case "minItems":
      case "maxItems":
      case "minLength":
      case "maxLength":
        return;
      case "additionalProperties":
        if (s.additionalProperties === false || s.additionalProperties === true || isObject(s.additionalProperties)) return;
        break;
      case "format":
        if (typeof s.format === "string" && FORMATS.has(s.format)) return;
        unsupported(join(path, key), `format ${String(s.format)}`);
        return;
      case "propertyNames":
      case "patternProperties":
        // Only extra properties could break them, and the grammar writes extras only under additionalProperties.
        if (s.additionalProperties === undefined || s.additionalProperties === false) return;
        break;
    }
    unsupported(join(path, key), key);
  }

  try {
    return { ok: true, schema: convert(schema, "") };
  } catch (err) {
    if (err instanceof Unsupported) return { ok: false, path: err.path, keyword: err.keyword };
    throw err;
  }
}

/** The type a schema without `type` implies by its keywords; none when it constrains nothing (any value). */
function inferTypes(s: Json): string[] {
  if (s.properties !== undefined || s.additionalProperties !== undefined) return ["object"];
  if (s.items !== undefined || s.prefixItems !== undefined) return ["array"];
  if (s.minLength !== undefined || s.maxLength !== undefined || s.format !== undefined) return ["string"];
  return [];
}

function jsonType(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}
