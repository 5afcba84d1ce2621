import { useEffect, useRef, useState } from "preact/hooks";
import type { JobList } from "@tessera/protocol";
import { api, describeError, openStream, sseData } from "../api.js";
import { ErrorNote, NeedsSignIn, TableBox } from "../components/status.js";
import { shortId, when } from "../format.js";
import { useSession } from "../session.js";

const REFRESH_MS = 3_000;

/** The caller's jobs (as the signed-in key, or as this address on an open network), and a running job's live stream. */
export function JobsPage() {
  const { session } = useSession();
  const [jobs, setJobs] = useState<JobList["jobs"]>();
  const [error, setError] = useState<string>();
  const [watching, setWatching] = useState<{ id: string; text: string; done: boolean }>();
  const abort = useRef<AbortController | null>(null);
  const canSee = session.signed_in || session.open;

  const load = () => api<JobList>("GET", "/dashboard/api/v1/jobs?limit=50").then((r) => setJobs(r.jobs), (err: unknown) => setError(describeError(err)));
  useEffect(() => {
    if (canSee) void load();
    return () => abort.current?.abort();
  }, [canSee]);

  // While a job is waiting or running, the list refreshes itself until every job has ended.
  const unfinished = jobs?.some((j) => j.status === "pending" || j.status === "processing") ?? false;
  useEffect(() => {
    if (!unfinished) return;
    const timer = setInterval(() => void load(), REFRESH_MS);
    return () => clearInterval(timer);
  }, [unfinished]);

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
      void load();
    } catch (err) {
      if ((err as Error).name !== "AbortError") setError(describeError(err));
    }
  };

  if (!canSee) return <section><h1>Jobs</h1><NeedsSignIn what="your jobs" /></section>;
  return (
    <section aria-labelledby="jobs-title">
      <h1 id="jobs-title">Jobs</h1>
      <div class="actions"><button type="button" onClick={() => void load()}>Refresh</button></div>
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
