import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { DashboardSessionView } from "@tessera/protocol";

export interface SessionState {
  session: DashboardSessionView;
  /** Re-reads the session from the coordinator (after sign-in, sign-out or a revoked key). */
  refresh(): Promise<void>;
}

export const SessionContext = createContext<SessionState>({ session: { signed_in: false, open: false }, refresh: async () => {} });

export const useSession = () => useContext(SessionContext);
