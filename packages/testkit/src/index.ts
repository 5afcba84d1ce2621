export {};
export * from "./fakes/index.js";
