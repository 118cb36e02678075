// The frontend's status map, from the seed report ("Frontend Mapping"), typed by the generated client.
// Before: `status: number` and `statusName: string`, so `statusMap[statusStr] || 'Unknown'`.
import type { components } from "tutorbook-api";

type SessionOut = components["schemas"]["SessionOut"];
type SessionStatus = SessionOut["status"];
type StatusName = SessionOut["statusName"];

// Both are closed enums in the document, not `number` and `string`.
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
export const statusIsTheFourCodes: Equals<SessionStatus, 0 | 1 | 2 | 3> = true;
export const statusNameIsTheFourNames: Equals<StatusName, "Pending" | "Confirmed" | "Completed" | "Cancelled"> = true;

// Keyed by exactly the four statuses: a missing, extra or misspelt entry does not compile.
const statusMap: { [S in `${SessionStatus}`]: StatusName } = {
  '0': 'Pending',
  '1': 'Confirmed',
  '2': 'Completed',
  '3': 'Cancelled'
};

export function statusLabel(session: SessionOut): StatusName {
  const statusStr = `${session.status}` as const;
  // No `|| 'Unknown'`: there is no fifth status to fall back from.
  return statusMap[statusStr];
}

// The server sends the name too; it agrees with the map.
export function serverLabel(session: SessionOut): StatusName {
  return session.statusName;
}
