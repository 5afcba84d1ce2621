export { buildProgram, main, CLI_VERSION } from "./main.js";
