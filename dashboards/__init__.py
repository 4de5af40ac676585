"""Boards: the built-in live board (/board) and the Grafana boards as code."""
