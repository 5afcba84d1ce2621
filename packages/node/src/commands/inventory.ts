import type { Hardware, ServedModel } from "@tessera/protocol";
import type { BackendModel } from "../backends/adapter.js";
import { resolveServedModels } from "../register-node.js";
import { checkModelFit, type ModelFit } from "./model-fit.js";

/**
 * The node's model inventory: what `served_models` asks for, what the backend has, and what may be advertised.
 * Invariant: `served` holds only models the backend has AND that fit the node's memory.
 */
export interface Inventory {
  served: ServedModel[];
  /** In served_models, absent from the backend. */
  missing: string[];
  /** The backend has them but coordinators would refuse them (see resolveServedModels). */
  refused: string[];
  /** The backend has them and they are wanted, but they cannot fit this node's memory. */
  tooLarge: ModelFit[];
  /** The backend has them; served_models (non-empty) does not list them. */
  unlisted: string[];
}

export function reconcileInventory(
  configured: readonly string[],
  backendModels: readonly BackendModel[],
  backendKind: string,
  hardware: Pick<Hardware, "gpus" | "ram_mb">,
): Inventory {
  const { served, missing, refused } = resolveServedModels(configured, backendModels, backendKind);
  const tooLarge: ModelFit[] = [];
  const fitting = served.filter((m) => {
    const fit = checkModelFit(m.id, { hardware, ...(m.size_bytes !== undefined ? { sizeBytes: m.size_bytes } : {}) });
    if (!fit.fits) tooLarge.push(fit);
    return fit.fits;
  });
  const listed = new Set(configured);
  const unlisted = configured.length === 0 ? [] : backendModels.map((m) => m.id).filter((id) => !listed.has(id));
  return { served: fitting, missing, refused, tooLarge, unlisted };
}

/** One line per mismatch, for the daemon's start log and `tessera doctor`. */
export function inventoryWarnings(inventory: Inventory, backendKind: string): string[] {
  return [
    ...inventory.missing.map((id) => `served_models lists ${id} but backend ${backendKind} does not have it; not advertised (install it with \`tessera model install ${id}\`)`),
    ...inventory.refused,
    ...inventory.tooLarge.map(
      (f) => `${f.model} needs about ${(f.requiredMb / 1024).toFixed(1)} GiB but this node has ${(f.availableMb / 1024).toFixed(1)} GiB; not advertised`,
    ),
  ];
}

export type ModelStatus = "loaded" | "installed" | "missing";

export interface InventoryRow {
  name: string;
  sizeBytes: number | undefined;
  backend: string;
  status: ModelStatus;
  /** Advertised to the coordinator (listed or implied by an empty served_models, present, and fits). */
  served: boolean;
  fit: ModelFit;
}

/** Rows for `tessera model list`: every model in served_models or the backend, served ones first. */
export function inventoryRows(
  configured: readonly string[],
  backendModels: readonly BackendModel[],
  backendKind: string,
  hardware: Pick<Hardware, "gpus" | "ram_mb">,
): InventoryRow[] {
  const inventory = reconcileInventory(configured, backendModels, backendKind, hardware);
  const servedIds = new Set(inventory.served.map((m) => m.id));
  const byId = new Map(backendModels.map((m) => [m.id, m]));
  const names = [...new Set([...configured, ...backendModels.map((m) => m.id)])];
  const rows = names.map((name): InventoryRow => {
    const model = byId.get(name);
    const sizeBytes = model?.sizeBytes;
    return {
      name,
      sizeBytes,
      backend: backendKind,
      status: !model ? "missing" : model.loaded ? "loaded" : "installed",
      served: servedIds.has(name),
      fit: checkModelFit(name, { hardware, ...(sizeBytes !== undefined ? { sizeBytes } : {}) }),
    };
  });
  return rows.sort((a, b) => Number(b.served) - Number(a.served) || a.name.localeCompare(b.name));
}

/** The backend's id for a name the operator typed: exact, or with Ollama's implied `:latest` tag. */
export function backendIdFor(name: string, backendModels: readonly BackendModel[]): string | undefined {
  const ids = new Set(backendModels.map((m) => m.id));
  if (ids.has(name)) return name;
  if (!name.includes(":") && ids.has(`${name}:latest`)) return `${name}:latest`;
  return undefined;
}

/**
 * The daemon's start-time fit check: drops from its live served list every model that cannot fit this node's
 * memory, with a warning each (they stay installed; they are never advertised).
 */
export function dropModelsThatDoNotFit(
  served: { list: ServedModel[]; ids: Set<string> },
  hardware: Pick<Hardware, "gpus" | "ram_mb">,
  warn: (line: string) => void,
): void {
  const keep = served.list.filter((m) => {
    const fit = checkModelFit(m.id, { hardware, ...(m.size_bytes !== undefined ? { sizeBytes: m.size_bytes } : {}) });
    if (!fit.fits) {
      warn(`${m.id} needs about ${(fit.requiredMb / 1024).toFixed(1)} GiB but this node has ${(fit.availableMb / 1024).toFixed(1)} GiB; not advertised`);
      served.ids.delete(m.id);
    }
    return fit.fits;
  });
  served.list.splice(0, served.list.length, ...keep);
}
