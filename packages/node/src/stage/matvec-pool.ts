/**
 * Worker threads that run the arena's matrix-vector kernels over the same shared WebAssembly memory, so that one
 * product's rows are split across CPU cores. Every row is computed by the same kernel code in the same order
 * whichever thread computes it, so results are bit-identical to one thread's.
 *
 * Protocol, over a small shared Int32Array (`control`):
 * - [0] the generation: the calling thread fills the workers' slots, then increments it and wakes them;
 * - [1] how many workers have finished the current generation;
 * - [2] set to 1 to make the workers exit;
 * - from [3], one slot per worker: the kernel's index in KERNEL_NAMES, then its (up to 9) i32 arguments.
 * A worker spins for a while before sleeping (a token is ~60 products in a row, and a thread woken from sleep costs
 * tens of microseconds on a virtual machine); the caller does the same while it waits for the workers.
 */
import { Worker } from "node:worker_threads";
import { TesseraError } from "@tessera/protocol";

export const KERNEL_NAMES = ["matvecF32", "matvecF16", "matvecBF16", "matvecQ8", "matvecQ4K", "matvecQ6K"] as const;
export type PooledKernel = (typeof KERNEL_NAMES)[number];

/** A kernel's index in KERNEL_NAMES: how a call names it to the workers. */
export function kernelIndex(name: PooledKernel): number {
  return KERNEL_NAMES.indexOf(name);
}

const SLOT = 10;
const HEADER = 3;
/** Spin iterations (each an atomic load, a few ns) before a waiting thread sleeps: ~50-100 µs. */
const SPINS = 20_000;
/** How long the caller waits for its workers without progress before it reports them dead. */
const STALL_MS = 60_000;

/** The worker's whole program: instantiate the kernels over the shared memory, then serve generations. */
const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const { module, memory, control, index, names, spins } = workerData;
const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
const kernels = names.map((name) => exports[name]);
const s = ${HEADER} + index * ${SLOT};
let seen = 0; // generation 0 is "nothing yet": a worker that boots after the first start() still runs it
for (;;) {
  let n = 0;
  while (Atomics.load(control, 0) === seen && Atomics.load(control, 2) === 0) {
    if (++n > spins) {
      Atomics.wait(control, 0, seen);
      n = 0;
    }
  }
  if (Atomics.load(control, 2) !== 0) break;
  seen = Atomics.load(control, 0);
  kernels[control[s]](control[s + 1], control[s + 2], control[s + 3], control[s + 4], control[s + 5], control[s + 6], control[s + 7], control[s + 8], control[s + 9]);
  Atomics.add(control, 1, 1);
  Atomics.notify(control, 1);
}
`;

export class MatvecPool {
  private readonly control: Int32Array;
  private readonly workers: Worker[];

  /** `threads` in all: this one plus threads - 1 workers. */
  constructor(module: object, memory: object, readonly threads: number, private readonly stallMs = STALL_MS) {
    this.control = new Int32Array(new SharedArrayBuffer(4 * (HEADER + SLOT * (threads - 1))));
    this.workers = Array.from({ length: threads - 1 }, (_, index) => {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { module, memory, control: this.control, index, names: KERNEL_NAMES, spins: SPINS },
      });
      // Idle workers never keep the process alive; they sleep in Atomics.wait between tokens.
      worker.unref();
      return worker;
    });
  }

  /** First row of part `part` of `rows` split in `threads` parts (part `threads` is the end). */
  partStart(rows: number, part: number): number {
    return Math.floor((rows * part) / this.threads);
  }

  /** Worker `part - 1`'s call for the next generation (part 1..threads-1; part 0 is the caller's own). */
  assign(part: number, kernel: number, a0: number, a1: number, a2: number, a3: number, a4: number, a5 = 0, a6 = 0, a7 = 0, a8 = 0): void {
    const c = this.control;
    const s = HEADER + (part - 1) * SLOT;
    c[s] = kernel;
    c[s + 1] = a0;
    c[s + 2] = a1;
    c[s + 3] = a2;
    c[s + 4] = a3;
    c[s + 5] = a4;
    c[s + 6] = a5;
    c[s + 7] = a6;
    c[s + 8] = a7;
    c[s + 9] = a8;
  }

  /** Starts the assigned calls on the workers. */
  start(): void {
    Atomics.store(this.control, 1, 0);
    Atomics.add(this.control, 0, 1);
    Atomics.notify(this.control, 0);
  }

  /**
   * Waits until every worker has finished the calls start() began. A worker that died would leave this thread
   * waiting for ever (its event loop is blocked, so no 'exit' event can arrive): after `stallMs` (default 60 s)
   * without progress it gives up with an error instead.
   */
  finish(): void {
    const c = this.control;
    const all = this.threads - 1;
    let n = 0;
    let sleepingSince = 0;
    for (let done = Atomics.load(c, 1); done < all; done = Atomics.load(c, 1)) {
      if (++n <= SPINS) continue;
      if (sleepingSince === 0) sleepingSince = Date.now();
      else if (Date.now() - sleepingSince > this.stallMs) {
        throw new TesseraError("internal_error", `the stage runtime's worker threads stopped answering (${done} of ${all} finished in ${this.stallMs / 1000} s)`);
      }
      Atomics.wait(c, 1, done, Math.min(1000, this.stallMs));
    }
  }

  /** Ends the workers (they exit at their next check). */
  close(): void {
    Atomics.store(this.control, 2, 1);
    Atomics.notify(this.control, 0);
    for (const w of this.workers) void w.terminate();
  }
}
