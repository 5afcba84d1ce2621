import { describe, expect, it } from "vitest";
import { scanForStop } from "./stop-sequences.js";

/** Feeds parts one by one as the job manager does; returns what the client would see and whether it stopped. */
function relay(parts: string[], stops: string[]): { sent: string[]; stopped: boolean; text: string } {
  let text = "";
  let sent = 0;
  const out: string[] = [];
  for (const part of parts) {
    text += part;
    const scan = scanForStop(text, sent, stops);
    if ("stopAt" in scan) {
      if (scan.stopAt > sent) out.push(text.slice(sent, scan.stopAt));
      return { sent: out, stopped: true, text: text.slice(0, scan.stopAt) };
    }
    if (scan.safeEnd > sent) out.push(text.slice(sent, scan.safeEnd));
    sent = scan.safeEnd;
  }
  if (sent < text.length) out.push(text.slice(sent));
  return { sent: out, stopped: false, text };
}

describe("stop sequences over relayed parts", () => {
  it.each([
    ["no stop sequence in sight: every part goes at once", ["Hello", " world"], ["END"], { sent: ["Hello", " world"], stopped: false }],
    ["a stop inside one part: the text before it, never the stop", ["one two END three"], ["END"], { sent: ["one two "], stopped: true }],
    ["a stop split across parts is still caught", ["one E", "N", "D two"], ["END"], { sent: ["one "], stopped: true }],
    ["a held prefix that turns out not to be a stop is sent", ["one E", "NX"], ["END"], { sent: ["one ", "ENX"], stopped: false }],
    ["a held prefix at the very end is sent when the answer ends", ["one EN"], ["END"], { sent: ["one ", "EN"], stopped: false }],
    ["the earliest of several stops wins", ["a\n\nb STOP c"], ["STOP", "\n\n"], { sent: ["a"], stopped: true }],
    ["a stop at the very start sends nothing", ["END and more"], ["END"], { sent: [], stopped: true }],
    ["a held tail that is not the stop, followed by one that is", ["xaa", "baabc"], ["aabc"], { sent: ["x", "aab"], stopped: true }],
  ])("%s", (_name, parts, stops, expected) => {
    expect(relay(parts, stops)).toMatchObject(expected);
  });

  it("joins to exactly the text before the stop, for every way of cutting it into parts", () => {
    const whole = "The answer is 42.\nUser: and then";
    const stops = ["\nUser:"];
    for (let i = 1; i < whole.length; i++) {
      for (let j = i + 1; j < whole.length; j++) {
        const r = relay([whole.slice(0, i), whole.slice(i, j), whole.slice(j)], stops);
        expect(r.sent.join("")).toBe("The answer is 42.");
        expect(r.stopped).toBe(true);
      }
    }
  });
});
