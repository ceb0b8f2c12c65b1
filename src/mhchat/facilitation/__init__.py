"""Facilitation: what the host does by hand, done by the service.

Chat sessions and their questions, conversation threads, fair reposts, first-timer welcomes
and the safety step. Everything here is platform-neutral: it sees events and writes decisions
to the action ledger, and never calls a platform.
"""
