"""Weekly lessons (issue #29): a series of real bookings, one per chosen week, each held, paid,
moved and cancelled as a lone booking is; the series itself keeps who pays how (a saved card at a
Stripe Customer, or credits), the weeks and the calendar invite's SEQUENCE."""
