"""The built-in board's routes, mounted by the application (app/api.py)."""
