"""Lesson packages and the family credit wallet (issue #28): packages a teacher sells, their
purchases through Stripe Checkout, and one append-only ledger whose sum is every balance."""
