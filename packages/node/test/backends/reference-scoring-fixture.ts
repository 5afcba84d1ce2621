import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type IdLevelModel, loadIdLevelModel, makeTinyModel } from "@tessera/testkit";
import { createEmbeddedBackend, type EmbeddedBackend } from "../../src/backends/embedded/embedded-backend.js";

/**
 * What a backend's reference-scoring test scores against: three tiny GGUF files (the model, other weights of the same
 * shape, and an EOS-heavy model that stops on its own), an id-level fake of the backend in front of the model and one in
 * front of the EOS-heavy model (both served under `modelId`), and the embedded engine on the model, whose scores are the
 * yardstick.
 */
export interface ReferenceScoringFixture<Fake> {
  modelPath: string;
  /** Other weights (another seed) of the same shape. */
  otherPath: string;
  /** The model's weights with a boosted EOS, so greedy answers stop on their own. */
  eosPath: string;
  model: IdLevelModel;
  eosModel: IdLevelModel;
  fake: Fake;
  eosFake: Fake;
  embedded: EmbeddedBackend;
  close(): Promise<void>;
}

export async function startReferenceScoringFixture<Fake extends { close(): Promise<void> }>(options: {
  modelId: string;
  /** Prefix of the temporary directory the GGUF files go in. */
  tmpPrefix: string;
  startFake: (model: IdLevelModel) => Promise<Fake>;
}): Promise<ReferenceScoringFixture<Fake>> {
  const dir = mkdtempSync(join(tmpdir(), options.tmpPrefix));
  const modelPath = join(dir, "tiny.gguf");
  const otherPath = join(dir, "other.gguf");
  const eosPath = join(dir, "eos-heavy.gguf");
  await makeTinyModel({ path: modelPath, seed: 1, vocab: "spm" });
  await makeTinyModel({ path: otherPath, seed: 2, vocab: "spm" });
  await makeTinyModel({ path: eosPath, seed: 1, vocab: "spm", eosScale: 2.5 });
  const model = await loadIdLevelModel({ modelPath, modelId: options.modelId });
  const eosModel = await loadIdLevelModel({ modelPath: eosPath, modelId: options.modelId });
  const fake = await options.startFake(model);
  const eosFake = await options.startFake(eosModel);
  const embedded = createEmbeddedBackend({ modelPath, modelId: options.modelId, threads: 1, maxSequences: 1 });
  return {
    modelPath,
    otherPath,
    eosPath,
    model,
    eosModel,
    fake,
    eosFake,
    embedded,
    async close() {
      await fake.close();
      await eosFake.close();
      await embedded.close();
      await model.close();
      await eosModel.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
