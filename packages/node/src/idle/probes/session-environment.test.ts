import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseSessionEnvironment, userManagerSession } from "./session-environment.js";

const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url), "utf8");

describe("the graphical session's display, from the user manager (a service started before the desktop)", () => {
  it("parses systemctl --user show-environment: only the session's display variables", () => {
    expect(parseSessionEnvironment(fixture("systemctl-user-show-environment.txt"))).toEqual({
      DISPLAY: ":0",
      WAYLAND_DISPLAY: "wayland-0",
      XAUTHORITY: "/run/user/1000/.mutter-Xwaylandauth.A1B2C3",
      XDG_RUNTIME_DIR: "/run/user/1000",
      DBUS_SESSION_BUS_ADDRESS: "unix:path=/run/user/1000/bus",
    });
    expect(parseSessionEnvironment("DISPLAY=$'odd value'\n")).toEqual({});
  });

  it("no desktop yet: undefined, asked again after the TTL, then the session once it is there", async () => {
    let t = 0;
    let output = fixture("systemctl-user-show-environment-no-session.txt");
    let asked = 0;
    const session = userManagerSession(async (command, args) => {
      asked++;
      expect([command, ...args]).toEqual(["systemctl", "--user", "show-environment"]);
      return { code: 0, stdout: output };
    }, () => t, 10_000);
    expect(await session.read()).toBeUndefined();
    output = fixture("systemctl-user-show-environment.txt");
    t = 5_000;
    expect(await session.read()).toBeUndefined();
    expect(asked).toBe(1);
    t = 10_000;
    expect(await session.read()).toMatchObject({ WAYLAND_DISPLAY: "wayland-0", DISPLAY: ":0" });
    expect(asked).toBe(2);
  });

  it("no user manager (a container, a system service): undefined", async () => {
    const session = userManagerSession(async () => ({ code: 1, stdout: "", stderr: "Failed to connect to bus: No medium found" }), () => 0);
    expect(await session.read()).toBeUndefined();
  });
});
