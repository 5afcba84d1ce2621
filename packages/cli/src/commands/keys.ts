import { existsSync, readFileSync } from "node:fs";
import type { Command } from "commander";
import { DELEGATION_FAILURES, KEY_ROTATION_GRACE_SECONDS, TesseraError, encodeNpub, encodeNsec, verifyDelegation } from "@tessera/protocol";
import { printedCommand } from "../config.js";
import { printJson } from "../output.js";
import { type NodeFlags, nodeConfigFrom, withHomeOption } from "./node-options.js";

const day = (unixSeconds: number) => new Date(unixSeconds * 1000).toISOString();

/** `tessera keys list|rotate|export|verify`: this node's key, its operator's delegation, rotation. */
export function addKeysCommand(program: Command, nowMs: () => number = () => Date.now()): void {
  const keys = program.command("keys").description("this node's keys: the node key, the operator's delegation of it, rotation");

  withHomeOption(keys.command("list"))
    .description("show the node key, the operator key (when on this machine), the delegation and a rotation in progress")
    .option("--json", "print JSON")
    .action(async (flags: NodeFlags & { json?: boolean }) => {
      const config = nodeConfigFrom(flags, false);
      const { readKeyFile } = await import("@tessera/node/key-store");
      const { paths } = config;
      const node = readKeyFile(paths.keyFile);
      const operator = existsSync(paths.operatorKeyFile) ? readKeyFile(paths.operatorKeyFile, "operator") : undefined;
      const nowSeconds = Math.floor(nowMs() / 1000);
      const delegation = existsSync(paths.delegationFile) ? verifyDelegation(safeJson(paths.delegationFile), node.publicKeyHex, nowSeconds) : undefined;
      const previous = existsSync(paths.previousKeyFile) ? readKeyFile(paths.previousKeyFile) : undefined;
      const view = {
        node: { id: node.publicKeyHex, npub: node.npub, file: paths.keyFile },
        operator: operator ? { id: operator.publicKeyHex, npub: operator.npub, file: paths.operatorKeyFile } : null,
        delegation: delegation === undefined ? null : delegation.ok
          ? { operator: delegation.delegation.operator, issued_at: day(delegation.delegation.issued_at), expires_at: day(delegation.delegation.expires_at), valid: true }
          : { valid: false, problem: DELEGATION_FAILURES[delegation.reason] },
        previous_key: previous ? { id: previous.publicKeyHex, npub: previous.npub, note: `accepted for ${KEY_ROTATION_GRACE_SECONDS / 3600} h after the new key first registers` } : null,
      };
      if (flags.json) return printJson(view);
      const lines = [`node key     ${node.npub}`, `             ${node.publicKeyHex}`];
      lines.push(operator ? `operator key ${operator.npub} (${paths.operatorKeyFile})` : "operator key not on this machine");
      if (!view.delegation) lines.push(`delegation   none: ${operator ? "signed at the next registration" : "this node is its own operator"}`);
      else if (view.delegation.valid) lines.push(`delegation   by ${encodeNpub(view.delegation.operator!)} until ${view.delegation.expires_at}`);
      else lines.push(`delegation   INVALID: ${view.delegation.problem}`);
      if (previous) lines.push(`rotated from ${previous.npub} (${view.previous_key!.note})`);
      process.stdout.write(`${lines.join("\n")}\n`);
    });

  withHomeOption(keys.command("rotate"))
    .description(`replace the node key; the old one stays valid for ${KEY_ROTATION_GRACE_SECONDS / 3600} h after the new one registers (needs the operator key here)`)
    .option("--json", "print JSON")
    .action(async (flags: NodeFlags & { json?: boolean }) => {
      const config = nodeConfigFrom(flags, false);
      const { rotateNodeKey } = await import("@tessera/node/identity");
      const rotated = rotateNodeKey(config.paths, Math.floor(nowMs() / 1000));
      if (flags.json) return printJson(rotated);
      const home = flags.home ? ` --home ${flags.home}` : "";
      process.stdout.write(
        [
          `new node key ${encodeNpub(rotated.next)}`,
          `old node key ${encodeNpub(rotated.previous)} (kept as ${config.paths.previousKeyFile})`,
          `operator     ${encodeNpub(rotated.operator)}`,
          "",
          `Restart the daemon to use the new key (\`${printedCommand()} register${home}\`, or restart \`${printedCommand()} start${home}\`).`,
          `The coordinator carries the node's standing over and accepts the old key for ${KEY_ROTATION_GRACE_SECONDS / 3600} h after that.`,
          "",
        ].join("\n"),
      );
    });

  withHomeOption(keys.command("export"))
    .description("print this node's public identity (key, operator, delegation) as JSON; --secret adds the nsec")
    .option("--secret", "include the node's secret key (anyone holding it can act as this node)")
    .action(async (flags: NodeFlags & { secret?: boolean }) => {
      const config = nodeConfigFrom(flags, false);
      const { readKeyFile } = await import("@tessera/node/key-store");
      const node = readKeyFile(config.paths.keyFile);
      const delegation = existsSync(config.paths.delegationFile) ? safeJson(config.paths.delegationFile) : null;
      if (flags.secret) process.stderr.write("warning: the output holds the node's secret key; whoever reads it can act as this node\n");
      printJson({ node: node.publicKeyHex, npub: node.npub, delegation, ...(flags.secret ? { nsec: encodeNsec(node.secretKeyHex) } : {}) });
    });

  withHomeOption(keys.command("verify"))
    .description("check a delegation offline: its signature, its node and its dates (default: this node's delegation.json)")
    .argument("[file]", "a delegation JSON file, or - for stdin")
    .option("--node <key>", "the node key it must be for (default: this node's)")
    .action(async (file: string | undefined, flags: NodeFlags & { node?: string }) => {
      const config = nodeConfigFrom(flags, false);
      const path = file ?? config.paths.delegationFile;
      const value = path === "-" ? parseJson(readFileSync(0, "utf8"), "stdin") : safeJson(path);
      const { parsePublicKey } = await import("@tessera/protocol");
      let node: string | undefined;
      if (flags.node !== undefined) {
        node = parsePublicKey(flags.node);
        if (!node) throw new TesseraError("bad_request", `--node "${flags.node}" is not a node key (npub1… or 64 hex)`);
      } else {
        const { readKeyFile } = await import("@tessera/node/key-store");
        node = readKeyFile(config.paths.keyFile).publicKeyHex;
      }
      const check = verifyDelegation(value, node, Math.floor(nowMs() / 1000));
      if (!check.ok) throw new TesseraError("unauthorized", `${path}: ${DELEGATION_FAILURES[check.reason]}`);
      process.stdout.write(`valid: node ${encodeNpub(check.delegation.node)} under operator ${encodeNpub(check.delegation.operator)} until ${day(check.delegation.expires_at)}\n`);
    });
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new TesseraError("bad_request", `${where} is not JSON`);
  }
}

function safeJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new TesseraError("not_found", `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return parseJson(text, path);
}
