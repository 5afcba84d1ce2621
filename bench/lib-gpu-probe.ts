/**
 * bench/gpu-check.sh's backend probe: one line per ggml GPU backend, `<backend>\t<ok|no>\t<detail>`, the same
 * decision as the node's `stage_backend = <backend>` (the build found, loaded beside the same release's libggml-base,
 * a GPU device found). Run with the GPU runtime prefix as its one argument.
 */
import { GPU_STAGE_BACKENDS, resolveStageRuntime } from "@tessera/node";

const where = { gpuRuntimeDir: process.argv[2] };
for (const kind of GPU_STAGE_BACKENDS) {
  let line: string;
  try {
    const choice = resolveStageRuntime(kind, undefined, where);
    line = `${kind}\t${choice.runtime ? "ok" : "no"}\t${choice.detail.replace(/^stage backend \S+ cannot run here: /, "")}`;
  } catch (err) {
    line = `${kind}\tno\t${(err as Error).message}`;
  }
  console.log(line);
}
