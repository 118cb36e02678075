// The payment-cancel page's call from the seed report ("Required Frontend Update"), adapted only to
// run without Angular: `sessionService.cancelPayment` is written with openapi-fetch over the
// generated `paths`, so the URL template, its `stripeSessionId` parameter and the response are checked.
import createClient from "openapi-fetch";
import type { operations, paths } from "tutorbook-api";

type CancelPayment = operations["Sessions_cancelPayment"];

const api = createClient<paths>({ baseUrl: "" });

export const sessionService = {
  async cancelPayment(sessionId: string, bookingId?: string): Promise<boolean> {
    const path: CancelPayment["parameters"]["path"] = { stripeSessionId: sessionId };
    const { data, error } = await api.POST("/api/Sessions/cancel-payment/{stripeSessionId}", {
      params: { path, query: { bookingId } },
    });
    if (error) {
      throw new Error(error.message);
    }
    return data.data === true;
  },
};

// payment-cancel.component.ts, ngOnInit's body with the route's query params passed in.
export function onPaymentCancelPage(params: Record<string, string | undefined>): void {
  const sessionId = params['session_id'];
  const type = params['type'];

  if (sessionId && type === 'session-booking') {
    // Call backend to cancel session
    sessionService.cancelPayment(sessionId, params['booking_id']).then(
      () => console.log('Session cancelled'),
      (err) => console.error('Cancellation failed', err)
    );
  }
}
