// My Bookings and the teacher's schedule, paged as the frontend would: the seed's page numbers
// still type-check unchanged, and the keyset cursors (`after`, `nextCursor`, the schedule's Link
// header) are optional additions.
import createClient from "openapi-fetch";
import type { components, operations, paths } from "tutorbook-api";

type SessionOut = components["schemas"]["SessionOut"];
type SessionPage = components["schemas"]["SessionPage"];

const api = createClient<paths>({ baseUrl: "" });

// The fields the page-number code reads keep their types: numbers, never null.
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
export const pageIsANumber: Equals<SessionPage["page"], number> = true;
export const totalIsANumber: Equals<SessionPage["total"], number> = true;
export const cursorIsOptional: Equals<SessionPage["nextCursor"], string | null | undefined> = true;

// Page numbers, as before.
export async function myBookingsPage(page: number, pageSize = 20): Promise<SessionPage> {
  const { data, error } = await api.GET("/api/Sessions/my-bookings", { params: { query: { page, pageSize } } });
  if (error || !data.data) {
    throw new Error(error?.message ?? "no page");
  }
  const lastPage = Math.ceil(data.data.total / data.data.pageSize);
  console.log(`page ${data.data.page} of ${lastPage}`);
  return data.data;
}

// Every booking, page after page by cursor.
export async function allMyBookings(): Promise<SessionOut[]> {
  const all: SessionOut[] = [];
  let after: string | undefined;
  do {
    const query: operations["Sessions_myBookings"]["parameters"]["query"] = { pageSize: 100, after };
    const { data, error } = await api.GET("/api/Sessions/my-bookings", { params: { query } });
    if (error || !data.data) {
      throw new Error(error?.message ?? "no page");
    }
    all.push(...data.data.items);
    after = data.data.nextCursor ?? undefined;
  } while (after);
  return all;
}

// The schedule is still a list; the next page's URL comes in the Link header.
export async function wholeSchedule(from: string, to: string): Promise<SessionOut[]> {
  const all: SessionOut[] = [];
  let after: string | undefined;
  do {
    const { data, error, response } = await api.GET("/api/Sessions/teacher-schedule", {
      params: { query: { from, to, pageSize: 100, after } },
    });
    if (error || !data.data) {
      throw new Error(error?.message ?? "no sessions");
    }
    all.push(...data.data);
    const next = /<([^>]+)>;\s*rel="next"/.exec(response.headers.get("Link") ?? "");
    after = next ? new URL(next[1], "http://x").searchParams.get("after") ?? undefined : undefined;
  } while (after);
  return all;
}
