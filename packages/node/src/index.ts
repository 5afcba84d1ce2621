export * from "./backends/adapter.js";
