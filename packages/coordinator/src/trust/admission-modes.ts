/**
 * Who may join: `open` admits any operator; `token` admits a new operator that brings a join token; `approval` lets a
 * new operator wait as `pending` until the owner approves it (a join token skips the wait).
 */
export const ADMISSION_MODES = ["open", "token", "approval"] as const;
export type AdmissionMode = (typeof ADMISSION_MODES)[number];
