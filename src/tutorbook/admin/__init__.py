"""Operators' tools: the seed's verification reports, cleanup and reconciliation on demand."""
