"""Production's HTTP routers, mounted by the application (app/api.py)."""
