import { describe, expect, it } from "vitest";
import { TEXT_BRANCH_REST_GRAMMAR, outputGrammar } from "./output-grammar.js";

const WEATHER = { type: "function" as const, function: { name: "root", parameters: { type: "object", properties: { city: { const: "root" } } } } };
const definitions = (text: string) => text.split("\n").flatMap((line) => (/^([A-Za-z0-9-]+) ::=/.exec(line)?.[1] ?? []));

describe("the one grammar text starts at rule root, where llama.cpp's server starts every grammar", () => {
  it("tools: root is the call-or-text choice, the JSON generator's root is renamed tool-calls, and a function or value spelled root stays text", async () => {
    const auto = await outputGrammar({ tools: [WEATHER] });
    const required = await outputGrammar({ tools: [WEATHER], tool_choice: "required" });
    if (!auto.ok || auto.grammar.kind !== "tools" || !required.ok || required.grammar.kind !== "tools") throw new Error("no tool grammar");
    expect(auto.grammar.text.split("\n")[0]).toBe('root ::= "<tool_call>" tool-calls | [^<] .*');
    expect(required.grammar.text.split("\n")[0]).toBe('root ::= "<tool_call>" tool-calls');
    for (const g of [auto.grammar, required.grammar]) {
      expect(g.root).toBe("root");
      const names = definitions(g.text);
      expect(names.filter((n) => n === "root")).toHaveLength(1);
      expect(names.filter((n) => n === "tool-calls")).toHaveLength(1);
      expect(g.text).toContain('"\\"root\\""');
    }
  });

  it("JSON mode: the generator's own root; the text branch's rest is any text", async () => {
    const json = await outputGrammar({ response_format: { type: "json_object" } });
    if (!json.ok || json.grammar.kind !== "json") throw new Error("no JSON grammar");
    expect(json.grammar.text.startsWith("root ::= ")).toBe(true);
    expect(definitions(json.grammar.text).filter((n) => n === "root")).toHaveLength(1);
    expect(TEXT_BRANCH_REST_GRAMMAR).toBe("root ::= .*\n");
  });
});
