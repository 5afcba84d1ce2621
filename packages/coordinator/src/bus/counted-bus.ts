import type { Bus, PublishOutcome } from "./bus.js";

/**
 * A message lost on this replica: its handler threw (the bus dropped it and went on), or the bus refused to send it
 * (over the server's max_payload, or the bus closed).
 */
export type BusFault = "handler_threw" | Exclude<PublishOutcome, "sent">;

/** What `countedBus` counts into: messages and bytes, by direction and by the subject's kind (its last token), and faults. */
export interface BusTrafficCounters {
  busMessages: { inc(labels: { direction: "sent" | "received"; subject: string }): void };
  busBytes: { inc(labels: { direction: "sent" | "received"; subject: string }, value: number): void };
  busFaults: { inc(labels: { fault: BusFault; subject: string }): void };
}

/**
 * `bus`, counting every message and byte it sends and receives (`tessera_bus_messages_total`,
 * `tessera_bus_bytes_total`) and every message lost to a fault (`tessera_bus_faults_total`). The label is the subject's kind (`beats`, `standing`, `commands`, `reports`,
 * `sessions`, `frames`), never a replica id, so the series stay few however many replicas there are.
 */
export function countedBus(bus: Bus, counters: BusTrafficCounters): Bus {
  return {
    publish(subject, data) {
      const labels = { direction: "sent" as const, subject: kindOf(subject) };
      const outcome = bus.publish(subject, data);
      if (outcome === "sent") {
        counters.busMessages.inc(labels);
        counters.busBytes.inc(labels, data.byteLength);
      } else {
        counters.busFaults.inc({ fault: outcome, subject: labels.subject });
      }
      return outcome;
    },
    subscribe(subject, handler) {
      const labels = { direction: "received" as const, subject: kindOf(subject) };
      return bus.subscribe(subject, (data) => {
        counters.busMessages.inc(labels);
        counters.busBytes.inc(labels, data.byteLength);
        try {
          handler(data);
        } catch (err) {
          counters.busFaults.inc({ fault: "handler_threw", subject: labels.subject });
          // The bus logs it and goes on delivering (Bus.subscribe).
          throw err;
        }
      });
    },
    maxPayload: () => bus.maxPayload(),
    flush: () => bus.flush(),
    close: () => bus.close(),
  };
}

function kindOf(subject: string): string {
  return subject.slice(subject.lastIndexOf(".") + 1);
}
