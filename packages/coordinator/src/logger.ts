import pino from "pino";

export type Logger = pino.Logger;

/** Readable single-line logs on stdout; `silent` for tests. */
export function createLogger(level: string = "info"): Logger {
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime });
}
