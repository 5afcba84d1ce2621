/**
 * What to tell an operator whose backend cannot install a model through tessera: vLLM, SGLang, MAX and llama-server
 * load their model when the server starts (none has an API to add one), llama-swap reads its config file.
 * One sentence per kind, naming the server's own command; `model` is what the operator asked for.
 */
export function howToAddModel(kind: string, model: string): string {
  const tail = "then list its id in served_models (or leave served_models empty to serve all)";
  switch (kind) {
    case "vllm":
      return `vLLM loads its model when the server starts and has no API to add one: restart it as \`vllm serve ${model}\` (one model per server; for more, run another instance and list it in vllm_instances), ${tail}`;
    case "sglang":
      return `SGLang loads its model when the server starts and has no API to add one: restart it as \`python -m sglang.launch_server --model-path ${model}\`, ${tail}`;
    case "max":
      return `MAX loads its model when the server starts: restart it as \`max serve --model-path ${model}\`, ${tail}`;
    case "llama-server":
      return `llama-server loads one GGUF when it starts and has no API to add one: restart it as \`llama-server -m FILE.gguf\` (or \`llama-server -hf owner/repo:Q4_K_M\`); or serve GGUFs with tessera's embedded engine (backend = "embedded"), where \`tessera model install\` downloads them`;
    case "llama-swap":
      return `llama-swap reads its models from its config file: add an entry for ${model} (cmd: llama-server -m FILE.gguf --port \${PORT}) to config.yaml and restart llama-swap, ${tail}`;
    case "embedded":
      return `the embedded engine serves one GGUF file (model_path): on the node's machine run \`tessera model install URL|hf:owner/repo:QUANT\`, which downloads it and makes it model_path, then restart the node`;
    case "stage-only":
      return `this node serves layer spans only (stage_model); to serve a whole model give it --model FILE.gguf or a backend`;
    default:
      return `backend ${kind} loads its models with its own tools: add ${model} there, ${tail}`;
  }
}
