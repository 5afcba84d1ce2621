import { TesseraError } from "@tessera/protocol";

/**
 * What `--bus` names: the NATS server's address and the credentials the replicas present to it, as NATS's own tools
 * write them in a URL: `nats://user:password@host:port` (user and password), `nats://token@host:port` (a token), or
 * `nats://host:port` (none), with `tls://` for a server that requires TLS. Characters outside `[A-Za-z0-9._-]` in a
 * user, password or token are percent-encoded (`%40` for `@`).
 *
 * nats.js ignores credentials in a server URL, so they are taken out here and passed as options; the URL every log
 * line and error shows (`shown`) never has the secret in it.
 */
export interface BusEndpoint {
  /** The server, with its scheme and without credentials: what the client connects to. */
  server: string;
  /** The same for logs and errors, with `***` where the password or token was. */
  shown: string;
  auth: { user: string; pass: string } | { token: string } | undefined;
}

const SHAPE = /^(nats|tls):\/\/(?:([A-Za-z0-9._~%-]+)(?::([A-Za-z0-9._~%-]*))?@)?([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?$/;

/** Reads a `--bus` URL; `bad_request` (never echoing a secret) when it is not one. */
export function parseBusUrl(url: string): BusEndpoint {
  const m = SHAPE.exec(url);
  const port = m?.[5] === undefined ? undefined : Number(m[5]);
  if (!m || (port !== undefined && (port < 1 || port > 65_535))) {
    throw new TesseraError("bad_request", `--bus (TESSERA_BUS) must be nats://[user:password@ or token@]host:port (or tls://…), got "${hideCredentials(url)}"`);
  }
  const [, scheme, user, password, host] = m;
  const address = `${host}${port === undefined ? "" : `:${port}`}`;
  const server = `${scheme}://${address}`;
  if (user === undefined) return { server, shown: server, auth: undefined };
  const decode = (part: string, what: string): string => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new TesseraError("bad_request", `--bus (TESSERA_BUS): the ${what} in "${hideCredentials(url)}" is not valid percent-encoding`);
    }
  };
  if (password === undefined) return { server, shown: `${scheme}://***@${address}`, auth: { token: decode(user, "token") } };
  return { server, shown: `${scheme}://${user}:***@${address}`, auth: { user: decode(user, "user"), pass: decode(password, "password") } };
}

/** `url` with whatever stands before an `@` after the scheme replaced by `***`, for a message about a malformed URL. */
export function hideCredentials(url: string): string {
  return url.replace(/^([^/]*\/\/)[^/]*@/, "$1***@");
}
