import { describe, expect, it } from "vitest";
import { type LineProcess, createIdleNotifyWatcher, swayidleArgs } from "./idle-notify-watcher.js";

/** A swayidle stand-in: the test pushes the lines the real one prints (`echo idle` / `echo active`) and its exit. */
function fakeSwayidle() {
  const spawned: Array<{ command: string; args: readonly string[] }> = [];
  let line: (l: string) => void = () => {};
  let exit: () => void = () => {};
  let killed = 0;
  const spawn = (command: string, args: readonly string[]): LineProcess => {
    spawned.push({ command, args });
    return { onLine: (l) => void (line = l), onExit: (e) => void (exit = e), kill: () => void killed++ };
  };
  return { spawn, spawned, print: (l: string) => line(l), exit: () => exit(), killed: () => killed };
}

describe("Wayland input idle time from ext-idle-notify (swayidle)", () => {
  it("asks for the policy's threshold as the timeout, in whole seconds", () => {
    expect(swayidleArgs(5_000)).toEqual(["timeout", "5", "echo idle", "resume", "echo active"]);
    expect(swayidleArgs(1_500)[1]).toBe("2");
    expect(swayidleArgs(200)[1]).toBe("1");
  });

  it("active until the first idle event; then idle since the timeout before it; active again on resume", () => {
    let now = 1_000_000;
    const sway = fakeSwayidle();
    const watcher = createIdleNotifyWatcher({ spawn: sway.spawn, now: () => now, thresholdMs: 5_000 });
    // Started on first use; before any event the owner may be typing: counted as present.
    expect(watcher.inputIdleMs()).toBe(0);
    expect(sway.spawned).toEqual([{ command: "swayidle", args: ["timeout", "5", "echo idle", "resume", "echo active"] }]);
    now += 7_000;
    expect(watcher.inputIdleMs()).toBe(0);
    // 5 s without input: the compositor says idle; the last input was 5 s before the event.
    sway.print("idle");
    expect(watcher.inputIdleMs()).toBe(5_000);
    now += 60_000;
    expect(watcher.inputIdleMs()).toBe(65_000);
    // The owner touches the mouse.
    sway.print("active");
    expect(watcher.inputIdleMs()).toBe(0);
    expect(sway.spawned).toHaveLength(1);
    watcher.close();
    expect(sway.killed()).toBe(1);
    expect(watcher.inputIdleMs()).toBeUndefined();
  });

  it("swayidle missing, or exiting (a compositor without ext-idle-notify): cannot tell, and it is not started again", () => {
    const sway = fakeSwayidle();
    const watcher = createIdleNotifyWatcher({ spawn: sway.spawn, now: () => 0, thresholdMs: 5_000 });
    watcher.inputIdleMs();
    sway.exit();
    expect(watcher.inputIdleMs()).toBeUndefined();
    expect(watcher.inputIdleMs()).toBeUndefined();
    expect(sway.spawned).toHaveLength(1);
  });
});
