import type { ComponentChildren } from "preact";

/**
 * A secret the coordinator shows once (a new API key, a join token): selectable and copyable, until the user says it
 * is stored. `heading` is the card's heading at the level its page needs; `children` say how the secret is used.
 */
export function ShownOnce({ heading, token, testId, onStored, children }: { heading: ComponentChildren; token: string; testId: string; onStored(): void; children: ComponentChildren }) {
  return (
    <div class="card created" role="status">
      {heading}
      {children}
      <label>
        Token
        <input readOnly value={token} data-testid={testId} onFocus={(e) => (e.target as HTMLInputElement).select()} />
      </label>
      <div class="actions">
        <button type="button" onClick={() => void navigator.clipboard?.writeText(token)}>Copy token</button>
        <button type="button" onClick={onStored}>I stored it</button>
      </div>
    </div>
  );
}
