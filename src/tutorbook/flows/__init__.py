"""Orchestration across domains: the only code that calls Stripe (the gateway), sends refunds
and makes meeting links around the domain services' transactions."""
