import { useEffect, useRef, useState } from "preact/hooks";
import type { JobList } from "@tessera/protocol";
import { describeError, openStream, sseData } from "../api.js";
import { ErrorNote, NeedsSignIn, TableBox } from "../components/status.js";
import { shortId, when } from "../format.js";
import { useSession } from "../session.js";

/**
 * The caller's jobs (as the signed-in key, or as this address on an open network), kept current by the coordinator's
 * event stream (`/dashboard/api/jobs/events`: the list again whenever it changes), and a running job's live stream.
 */
export function JobsPage() {
  const { session } = useSession();
  const [jobs, setJobs] = useState<JobList["jobs"]>();
  const [error, setError] = useState<string>();
  const [live, setLive] = useState(false);
  const [watching, setWatching] = useState<{ id: string; text: string; done: boolean }>();
  const abort = useRef<AbortController | null>(null);
  // Jobs belong to a key (or, on an open network, to an address): an operator or owner session alone has none.
  const canSee = session.key !== undefined || session.open;

  useEffect(() => () => abort.current?.abort(), []);
  // The stream answers with the list at once, then again on every change; EventSource reconnects by itself. It is
  // opened again when the session changes (another key, signed out), since the list is the session's.
  useEffect(() => {
    if (!canSee) return;
    const events = new EventSource("/dashboard/api/jobs/events");
    events.addEventListener("open", () => setLive(true));
    events.addEventListener("error", () => {
      setLive(false);
      // Closed (not reconnecting): the coordinator refused the stream, e.g. the session ended.
      if (events.readyState === EventSource.CLOSED) setError("The live list stopped: reload the page, or sign in again.");
    });
    events.addEventListener("jobs", (e) => {
      setJobs((JSON.parse((e as MessageEvent<string>).data) as JobList).jobs);
      setError(undefined);
    });
    return () => {
      events.close();
      setLive(false);
    };
  }, [canSee, session.key?.id, session.kind]);

  const watch = async (id: string) => {
    abort.current?.abort();
    abort.current = new AbortController();
    setWatching({ id, text: "", done: false });
    try {
      const res = await openStream("GET", `/dashboard/api/v1/jobs/${encodeURIComponent(id)}/stream`, undefined, abort.current.signal);
      let text = "";
      for await (const data of sseData(res)) {
        if (data === "[DONE]") break;
        const event = JSON.parse(data) as { text?: string; error?: string; message?: string };
        if (event.error) throw new Error(`${event.message ?? event.error} (${event.error})`);
        text += event.text ?? "";
        setWatching({ id, text, done: false });
      }
      setWatching({ id, text, done: true });
    } catch (err) {
      if ((err as Error).name !== "AbortError") setError(describeError(err));
    }
  };

  if (!canSee) return <section><h1>Jobs</h1><NeedsSignIn what="your jobs" /></section>;
  return (
    <section aria-labelledby="jobs-title">
      <h1 id="jobs-title">Jobs</h1>
      <p class="note" data-testid="jobs-live">{live ? "Live: the list updates as your jobs change." : "Connecting…"}</p>
      <ErrorNote message={error} />
      {watching ? (
        <div class="card" aria-live="polite">
          <h2>Job <code>{shortId(watching.id)}</code> {watching.done ? "(finished)" : "(live)"}</h2>
          <pre class="stream" data-testid="job-stream">{watching.text}</pre>
        </div>
      ) : null}
      {jobs && jobs.length === 0 ? <p>No jobs yet: try the <a href="#/playground">playground</a>.</p> : null}
      {jobs && jobs.length > 0 ? (
        <TableBox label="Your jobs">
          <thead>
            <tr><th scope="col">Job</th><th scope="col">Status</th><th scope="col">Model</th><th scope="col">Node</th><th scope="col">Tokens</th><th scope="col">Created</th><th scope="col">Stream</th></tr>
          </thead>
          <tbody>
            {jobs.map((j) => (
              <tr key={j.id} data-testid="job-row">
                <th scope="row"><code title={j.id}>{shortId(j.id)}</code></th>
                <td><span class={`badge ${j.status}`}>{j.status}</span>{j.error ? ` ${j.error}` : ""}</td>
                <td>{j.model}</td>
                <td>{j.node_id ? <code title={j.node_id}>{shortId(j.node_id)}</code> : "—"}</td>
                <td>{j.result ? j.result.usage.completion_tokens : "—"}</td>
                <td>{when(j.created_at)}</td>
                <td><button type="button" onClick={() => void watch(j.id)} aria-label={`Show the output of job ${j.id}`}>{j.status === "processing" || j.status === "pending" ? "Watch" : "Show"}</button></td>
              </tr>
            ))}
          </tbody>
        </TableBox>
      ) : null}
    </section>
  );
}
