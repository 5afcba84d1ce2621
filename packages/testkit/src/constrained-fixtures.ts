import type { ToolDefinition } from "@tessera/protocol";

/**
 * Tools and a JSON Schema for tests of constrained answers (tools, JSON mode), shared so that the embedded engine's,
 * llama-server's and the spot checks' tests constrain the same way. Strict where a test needs every call valid.
 */
export const WEATHER_TOOL: ToolDefinition = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Weather in a city",
    parameters: { type: "object", properties: { city: { type: "string", maxLength: 10 }, unit: { enum: ["c", "f"] } }, required: ["city", "unit"], additionalProperties: false },
    strict: true,
  },
};

export const TIME_TOOL: ToolDefinition = { type: "function", function: { name: "get_time", parameters: { type: "object", properties: { zone: { type: "string", maxLength: 5 } } } } };

export const CITY_SCHEMA = {
  type: "object",
  properties: { name: { type: "string", maxLength: 12 }, population: { type: "integer" }, coastal: { type: "boolean" }, kind: { enum: ["town", "city", "village"] } },
  required: ["name", "population", "coastal", "kind"],
  additionalProperties: false,
};
