/**
 * The edge check on a JSON Schema a client sends (`response_format.json_schema.schema`, a tool's `parameters`): it is
 * well-formed where a grammar compiler will read it, and bounded, so no request can make a node compile an unbounded
 * grammar. Pure. The bounds follow OpenAI's structured-output limits (10 levels of nesting) with room for real
 * schemas; what a backend can enforce of a well-formed schema is the backend's call (see the embedded engine's
 * `to-gbnf-json-schema.ts`).
 */

/** Deepest nesting of sub-schemas (an object property holding an array of objects is 3 levels). */
export const MAX_SCHEMA_DEPTH = 10;
/** Most sub-schemas in one schema, `$defs` included. */
export const MAX_SCHEMA_NODES = 1000;
/** Largest schema, as JSON text. */
export const MAX_SCHEMA_BYTES = 64 * 1024;

const JSON_TYPES = new Set(["string", "number", "integer", "boolean", "null", "object", "array"]);
/** Keywords whose value is one sub-schema, a list of them, or a map of them. */
const SCHEMA_VALUED = ["items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames", "additionalItems"];
const SCHEMA_LISTS = ["anyOf", "oneOf", "allOf", "prefixItems"];
const SCHEMA_MAPS = ["properties", "$defs", "definitions", "patternProperties", "dependentSchemas"];
const NUMBER_VALUED = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"];
const COUNT_VALUED = ["minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"];

export interface SchemaProblem {
  /** Where in the schema, dot-separated from the schema's root (`properties.city.type`); "" for the root. */
  path: string;
  message: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The first problem with `schema`, or undefined when it is a well-formed, bounded JSON Schema object. */
export function checkJsonSchema(schema: unknown): SchemaProblem | undefined {
  let size: number;
  try {
    size = new TextEncoder().encode(JSON.stringify(schema) ?? "").length;
  } catch {
    return { path: "", message: "the schema is not JSON" };
  }
  if (size > MAX_SCHEMA_BYTES) return { path: "", message: `the schema is ${size} bytes; at most ${MAX_SCHEMA_BYTES} are accepted` };
  let nodes = 0;
  const join = (path: string, key: string | number) => (path ? `${path}.${key}` : String(key));

  function visit(node: unknown, path: string, depth: number): SchemaProblem | undefined {
    // `true`/`false` are valid schemas (anything / nothing) only as sub-schemas, e.g. additionalProperties: false.
    if (typeof node === "boolean" && depth > 0) return undefined;
    if (!isObject(node)) return { path, message: "a schema must be a JSON object" };
    if (++nodes > MAX_SCHEMA_NODES) return { path, message: `the schema has more than ${MAX_SCHEMA_NODES} sub-schemas` };
    if (depth > MAX_SCHEMA_DEPTH) return { path, message: `the schema nests deeper than ${MAX_SCHEMA_DEPTH} levels` };
    const type = node.type;
    if (type !== undefined) {
      const types = Array.isArray(type) ? type : [type];
      if (types.length === 0 || !types.every((t) => typeof t === "string" && JSON_TYPES.has(t))) {
        return { path: join(path, "type"), message: `type must be one of ${[...JSON_TYPES].join(", ")}, or a list of them` };
      }
    }
    if (node.required !== undefined && !(Array.isArray(node.required) && node.required.every((r) => typeof r === "string"))) {
      return { path: join(path, "required"), message: "required must be a list of property names" };
    }
    if (node.enum !== undefined && !(Array.isArray(node.enum) && node.enum.length > 0)) {
      return { path: join(path, "enum"), message: "enum must be a non-empty list" };
    }
    if (node.$ref !== undefined && typeof node.$ref !== "string") return { path: join(path, "$ref"), message: "$ref must be a string" };
    for (const key of NUMBER_VALUED) {
      if (node[key] !== undefined && typeof node[key] !== "number") return { path: join(path, key), message: `${key} must be a number` };
    }
    for (const key of COUNT_VALUED) {
      const v = node[key];
      if (v !== undefined && !(typeof v === "number" && Number.isInteger(v) && v >= 0)) {
        return { path: join(path, key), message: `${key} must be a non-negative integer` };
      }
    }
    for (const key of SCHEMA_VALUED) {
      if (node[key] === undefined) continue;
      const problem = visit(node[key], join(path, key), depth + 1);
      if (problem) return problem;
    }
    for (const key of SCHEMA_LISTS) {
      const list = node[key];
      if (list === undefined) continue;
      if (!Array.isArray(list) || list.length === 0) return { path: join(path, key), message: `${key} must be a non-empty list of schemas` };
      for (const [i, sub] of list.entries()) {
        const problem = visit(sub, join(join(path, key), i), depth + 1);
        if (problem) return problem;
      }
    }
    for (const key of SCHEMA_MAPS) {
      const map = node[key];
      if (map === undefined) continue;
      if (!isObject(map)) return { path: join(path, key), message: `${key} must be an object of schemas` };
      // Definitions are not nested where they are declared but where they are used; counting them one level down keeps
      // the bound simple and still finite (a $ref cycle is the grammar compiler's concern, not a size one).
      for (const [name, sub] of Object.entries(map)) {
        const problem = visit(sub, join(join(path, key), name), depth + 1);
        if (problem) return problem;
      }
    }
    return undefined;
  }
  return visit(schema, "", 0);
}
