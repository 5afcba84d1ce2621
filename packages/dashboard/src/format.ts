/** Display helpers: short ids, numbers and money as people read them. */
export const shortId = (id: string) => (id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id);

export const num = (n: number | null | undefined, digits = 1) => (n === null || n === undefined ? "—" : n.toLocaleString("en", { maximumFractionDigits: digits }));

export const pct = (n: number) => `${Math.round(n * 100)}%`;

/** Micro-USDC (integers) as a USDC amount. */
export const usdc = (micro: number) => `${(micro / 1e6).toLocaleString("en", { minimumFractionDigits: 2, maximumFractionDigits: 6 })} USDC`;

export const when = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleString() : "—");
