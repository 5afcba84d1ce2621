export { main } from "./main.js";
export { buildProgram, runProgram } from "./program.js";
export { CLI_VERSION } from "./version.js";
