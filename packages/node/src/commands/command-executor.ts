import { type Hardware, type NodeCommand, type NodeCommandReport, type ServedModel, TesseraError } from "@tessera/protocol";
import type { BackendAdapter, BackendModel, PullProgress } from "../backends/adapter.js";
import type { SettingSource } from "../config.js";
import type { NodeLogger } from "../logger.js";
import { inventoryWarnings, reconcileInventory } from "./inventory.js";
import { describeMisfit } from "./model-fit.js";
import { installModel, removeModel } from "./model-operations.js";
import { nextServedModels, writeServedModels } from "./served-models-file.js";

/**
 * Runs the node commands the coordinator delivers (session push or heartbeat answer), one at a time in arrival
 * order. A command id is taken once however often it is delivered. For each: report `running` (then progress at
 * most every `progressIntervalMs`), act on the backend, update served_models in node.toml and the daemon's live
 * served list, re-sync the coordinator (a heartbeat with `models`), and only then report the result — so when an
 * operator sees `succeeded`, the coordinator already routes (or no longer routes) the model.
 */
export interface ServedModelsState {
  /** The daemon's live list: changed in place, so registration and heartbeats see the change. */
  list: ServedModel[];
  ids: Set<string>;
}

export interface CommandExecutorDeps {
  backend: BackendAdapter;
  hardware: Pick<Hardware, "gpus" | "ram_mb">;
  /** served_models as configured (copied; the executor keeps it current). */
  configured: readonly string[];
  configuredSource: SettingSource;
  configFile: string;
  served: ServedModelsState;
  report(commandId: string, report: NodeCommandReport): Promise<void>;
  /** Sends the served list to the coordinator now. */
  sync(): Promise<void>;
  logger: NodeLogger;
  now(): number;
  progressIntervalMs?: number;
}

export class NodeCommandExecutor {
  private readonly seen = new Set<string>();
  /** Taken and not finished (waiting in the chain or running). */
  private readonly unfinished = new Set<string>();
  private configured: string[];
  private chain: Promise<void> = Promise.resolve();
  private readonly abort = new AbortController();
  private closed = false;

  constructor(private readonly deps: CommandExecutorDeps) {
    this.configured = [...deps.configured];
  }

  /** Takes a command unless its id was already taken. */
  accept(command: NodeCommand): void {
    if (this.closed || this.seen.has(command.id)) return;
    this.seen.add(command.id);
    this.unfinished.add(command.id);
    this.deps.logger.info(`command ${command.id}: ${command.type} ${command.model} queued`);
    this.chain = this.chain.then(() => this.run(command)).finally(() => this.unfinished.delete(command.id));
  }

  /** Ids of the commands taken and not finished: sent with a registration so the coordinator keeps them running. */
  inProgress(): string[] {
    return [...this.unfinished];
  }

  acceptAll(commands: readonly NodeCommand[] | undefined): void {
    for (const c of commands ?? []) this.accept(c);
  }

  /** Resolves when every accepted command has finished. */
  idle(): Promise<void> {
    return this.chain;
  }

  /** Aborts a pull in progress (reported as failed) and takes no more commands. */
  async close(): Promise<void> {
    this.closed = true;
    this.abort.abort(new TesseraError("cancelled", "node shutting down"));
    await this.chain;
  }

  private async run(command: NodeCommand): Promise<void> {
    const { logger } = this.deps;
    const reporter = new ProgressReporter(command.id, this.deps);
    await reporter.send({ status: "running", progress: 0, detail: "starting" });
    try {
      if (this.closed) throw new TesseraError("cancelled", "node shutting down");
      const backendModels = command.type === "model_install" ? await this.install(command.model, reporter) : await this.remove(command.model);
      this.refreshServed(backendModels);
      await this.deps.sync();
      await reporter.flush();
      await reporter.send({ status: "succeeded", progress: 1 });
      logger.info(`command ${command.id}: ${command.type} ${command.model} succeeded`);
    } catch (err) {
      const e = err instanceof TesseraError ? err : new TesseraError("internal_error", err instanceof Error ? err.message : String(err));
      logger.warn(`command ${command.id}: ${command.type} ${command.model} failed: ${e.message}`);
      await reporter.flush();
      await reporter.send({ status: "failed", error: e.code, error_message: e.message.slice(0, 1024) });
    }
  }

  private async install(name: string, reporter: ProgressReporter): Promise<BackendModel[]> {
    const result = await installModel(this.deps.backend, name, {
      hardware: this.deps.hardware,
      signal: this.abort.signal,
      onProgress: (p) => reporter.progress(p),
    });
    if (!result.fit.fits) {
      // The name did not say its size; the pulled size on disk does. Installed, never advertised.
      throw new TesseraError("bad_request", `${describeMisfit(result.fit)}; installed but not advertised`);
    }
    this.updateConfigured(nextServedModels(this.configured, { add: result.id }));
    return result.backendModels;
  }

  private async remove(name: string): Promise<BackendModel[]> {
    const result = await removeModel(this.deps.backend, name);
    this.updateConfigured(nextServedModels(this.configured, { remove: result.id }));
    return result.backendModels;
  }

  private updateConfigured(next: string[] | undefined): void {
    if (next === undefined) return;
    this.configured = next;
    writeServedModels(this.deps.configFile, next);
    if (this.deps.configuredSource === "flag" || this.deps.configuredSource === "env") {
      this.deps.logger.warn(`served_models comes from the ${this.deps.configuredSource}, which overrides node.toml; update it there too`);
    }
  }

  private refreshServed(backendModels: BackendModel[]): void {
    const inventory = reconcileInventory(this.configured, backendModels, this.deps.backend.kind, this.deps.hardware);
    for (const line of inventoryWarnings(inventory, this.deps.backend.kind)) this.deps.logger.warn(line);
    const { list, ids } = this.deps.served;
    list.splice(0, list.length, ...inventory.served);
    ids.clear();
    for (const m of inventory.served) ids.add(m.id);
    this.deps.logger.info(`models: ${list.length ? list.map((m) => m.id).join(", ") : "none"}`);
  }
}

/** Sends reports in order; progress lines are thinned to one per interval and dropped while one is in flight. */
class ProgressReporter {
  private lastSentAt = -Infinity;
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly commandId: string,
    private readonly deps: CommandExecutorDeps,
  ) {}

  progress(p: PullProgress): void {
    const now = this.deps.now();
    if (this.inFlight || now - this.lastSentAt < (this.deps.progressIntervalMs ?? 100)) return;
    const report: NodeCommandReport = { status: "running", detail: p.status.slice(0, 256) };
    if (p.completedBytes !== undefined) report.completed_bytes = Math.round(p.completedBytes);
    if (p.totalBytes !== undefined) report.total_bytes = Math.round(p.totalBytes);
    if (p.totalBytes && p.completedBytes !== undefined) report.progress = Math.min(1, Math.max(0, p.completedBytes / p.totalBytes));
    this.inFlight = this.send(report).finally(() => (this.inFlight = undefined));
  }

  async flush(): Promise<void> {
    await this.inFlight;
  }

  async send(report: NodeCommandReport): Promise<void> {
    this.lastSentAt = this.deps.now();
    try {
      await this.deps.report(this.commandId, report);
    } catch (err) {
      this.deps.logger.warn(`could not report command ${this.commandId} (${report.status}): ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
