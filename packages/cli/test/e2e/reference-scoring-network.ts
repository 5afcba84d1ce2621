import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type IdLevelModel, loadIdLevelModel, makeTinyModel } from "@tessera/testkit";
import { ProcessNetwork } from "./process-network.js";

/** An id-level fake of a backend (testkit's FakeVllmScoring, FakeSglangScoring) in front of one model. */
interface IdLevelFake {
  readonly url: string;
  close(): Promise<void>;
}

export interface ReferenceScoringNetworkOptions<Fake extends IdLevelFake> {
  /** The model name every fake serves. */
  model: string;
  /** Prefix of the temporary directory the models and the processes' homes go in. */
  tmpPrefix: string;
  startFake(model: IdLevelModel): Promise<Fake>;
  /** The `tessera init` flags that put a node on its backend, in front of the fake at `fakeUrl`. */
  backendArgs(fakeUrl: string): string[];
  /** The `tessera init` flags that make the reference score on its backend (`--reference-scoring on`, …). */
  referenceArgs(model: IdLevelModel): string[];
}

/**
 * A coordinator checking every answer (`--check-rate 1`, no canaries) and three daemons on one backend, each its own
 * operator, in front of id-level fakes backed by real models:
 *   honest:    the backend serving the model;
 *   reference: the same backend and model, scoring, named with --reference-node;
 *   swap:      the backend serving other weights (another seed) under the same name.
 */
export interface ReferenceScoringNetwork<Fake extends IdLevelFake> {
  processes: ProcessNetwork;
  /** The fake the honest node and the reference are in front of. */
  honestFake: Fake;
  /** The fake serving other weights, in front of the swap node. */
  swapFake: Fake;
  honestId: string;
  swapId: string;
  stop(): Promise<void>;
}

export async function startReferenceScoringNetwork<Fake extends IdLevelFake>(options: ReferenceScoringNetworkOptions<Fake>): Promise<ReferenceScoringNetwork<Fake>> {
  const dir = mkdtempSync(join(tmpdir(), options.tmpPrefix));
  let processes: ProcessNetwork | undefined;
  let honestModel: IdLevelModel | undefined;
  let swapModel: IdLevelModel | undefined;
  let honestFake: Fake | undefined;
  let swapFake: Fake | undefined;
  const stop = async (): Promise<void> => {
    await processes?.stop();
    await honestFake?.close();
    await swapFake?.close();
    await honestModel?.close();
    await swapModel?.close();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const honestPath = join(dir, "honest.gguf");
    const swapPath = join(dir, "swap.gguf");
    await makeTinyModel({ path: honestPath, seed: 1, vocab: "spm" });
    await makeTinyModel({ path: swapPath, seed: 2, vocab: "spm" });
    honestModel = await loadIdLevelModel({ modelPath: honestPath, modelId: options.model });
    swapModel = await loadIdLevelModel({ modelPath: swapPath, modelId: options.model });
    honestFake = await options.startFake(honestModel);
    swapFake = await options.startFake(swapModel);
    processes = await ProcessNetwork.onFreePort(dir);
    const ids = {
      honest: await processes.initNode("honest", options.backendArgs(honestFake.url)),
      reference: await processes.initNode("reference", [...options.backendArgs(honestFake.url), ...options.referenceArgs(honestModel)]),
      swap: await processes.initNode("swap", options.backendArgs(swapFake.url)),
    };
    await processes.start(["--check-rate", "1", "--canary-interval", "0", "--reference-node", ids.reference], ids);
    return { processes, honestFake, swapFake, honestId: ids.honest, swapId: ids.swap, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
