/**
 * One reading of the machine, as the idle policy sees it. `undefined` means the probe cannot tell (no display, no
 * battery, no GPU tool); the policy decides what that means (`unknown_means_idle`).
 */
export interface IdleSample {
  /** Milliseconds since the last keyboard or mouse input. */
  inputIdleMs?: number;
  /** Utilisation (0..1) of a GPU by processes other than this daemon; 0 when only this daemon (or nothing) uses it. */
  otherGpuUtil?: number;
  /** The machine runs on battery now. */
  onBattery?: boolean;
  /** Which tool answered each signal, for the log and `tessera status --node`. */
  sources?: { input?: string; gpu?: string; power?: string };
}

/** The one injectable seam between the idle supervisor and the machine. */
export interface IdleProbe {
  sample(): Promise<IdleSample>;
  /** Ends what the probe keeps running (the Wayland idle-notification client); the supervisor's stop calls it. */
  close?(): void;
}
