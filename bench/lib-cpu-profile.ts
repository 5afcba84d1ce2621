/**
 * Node's flags that write a CPU profile (`--cpu-prof`) of a process a bench starts into the folder the environment
 * variable `name` gives (GATEWAY_PROF, ENGINE_PATH_PROF, REPLICAS_PROF, SCALE_PROF); none when it is unset.
 */
export function cpuProfileFlags(name: string): string[] {
  const dir = process.env[name];
  return dir ? ["--cpu-prof", "--cpu-prof-dir", dir] : [];
}
