#!/usr/bin/env node
// Entry point of the `tessera` command. The project runs its TypeScript sources through tsx (no build step), so this
// shim registers the loader and hands over to src/main.ts.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/main.ts");
await main(process.argv);
