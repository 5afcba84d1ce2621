export { buildProgram, main } from "./main.js";
export { CLI_VERSION } from "./version.js";
