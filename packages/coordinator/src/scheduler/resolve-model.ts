/** How many model names a `model_not_found` message lists before "and N more". */
export const MAX_LISTED_MODELS = 50;

export type ResolveModelResult =
  | { ok: true; model: string; /** The alias that was applied, when one was. */ via?: string }
  | { ok: false; code: "model_not_found"; message: string };

/**
 * Resolves a requested model name. An exact known name wins (an alias never shadows a served model); otherwise one
 * alias hop to a known target; otherwise `model_not_found` listing what is available (`available`: by default every
 * known model; callers pass the ones online now, asked for only when the name is not found). Pure.
 */
export function resolveModel(
  requested: string,
  aliases: Readonly<Record<string, string>> | ReadonlyMap<string, string>,
  knownModels: Iterable<string>,
  available?: () => Iterable<string>,
): ResolveModelResult {
  const known = knownModels instanceof Set ? (knownModels as ReadonlySet<string>) : new Set(knownModels);
  if (known.has(requested)) return { ok: true, model: requested };
  const target = aliases instanceof Map ? aliases.get(requested) : lookup(aliases as Record<string, string>, requested);
  if (target !== undefined && known.has(target)) return { ok: true, model: target, via: requested };
  const aliasNote = target !== undefined ? ` (alias of "${target}", which no node serves)` : "";
  return {
    ok: false,
    code: "model_not_found",
    message: `model "${requested}"${aliasNote} not found; ${availableList(available === undefined ? known : new Set(available()))}`,
  };
}

function lookup(table: Record<string, string>, key: string): string | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

function availableList(known: ReadonlySet<string>): string {
  if (known.size === 0) return "no models are available right now";
  const names = [...known].sort();
  const listed = names.slice(0, MAX_LISTED_MODELS).join(", ");
  const more = names.length > MAX_LISTED_MODELS ? ` and ${names.length - MAX_LISTED_MODELS} more` : "";
  return `available models: ${listed}${more}`;
}
