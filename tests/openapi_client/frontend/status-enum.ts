// With `openapi-typescript --enum` the generator names the status values from `x-enum-varnames`.
import { SessionStatus, type components } from "tutorbook-api-enums";

type SessionOut = components["schemas"]["SessionOut"];

export const cancelled: 3 = SessionStatus.Cancelled;

export function canResumePayment(session: SessionOut): boolean {
  return session.status === SessionStatus.Pending && session.checkoutUrl !== null;
}
