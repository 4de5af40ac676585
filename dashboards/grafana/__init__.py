"""Grafana boards as code: panel builders, the boards and their SQL, macro expansion, the push to Grafana."""
