import type { ComponentChildren } from "preact";

/** An error shown where the data would be, announced to screen readers. */
export function ErrorNote({ message }: { message: string | undefined }) {
  return message ? <p role="alert" class="error">{message}</p> : null;
}

/** A figure with its label, for the stat rows. */
export function Stat({ label, value, testId }: { label: string; value: ComponentChildren; testId?: string }) {
  return (
    <div class="stat">
      <div class="stat-value" data-testid={testId}>{value}</div>
      <div class="stat-label">{label}</div>
    </div>
  );
}

/** A table that scrolls sideways on a narrow screen instead of squeezing its columns. */
export function TableBox({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="table-box" role="region" aria-label={label} tabIndex={0}>
      <table>
        <caption class="visually-hidden">{label}</caption>
        {children}
      </table>
    </div>
  );
}

/** Shown where a page needs a session the visitor does not have. */
export function NeedsSignIn({ what }: { what: string }) {
  return (
    <p class="note">
      Sign in to see {what}. <a href="#/signin">Sign in</a>
    </p>
  );
}
