export { TesseraClient, type TesseraClientOptions, type ChatRequest } from "./client.js";
export { TesseraError, isErrorCode, type ErrorCode } from "@tessera/protocol";
