"""Inventory services: load through a session, call the rules, write what they decided, commit once."""
