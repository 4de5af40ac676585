"""The database adapter: the ORM base and engine, and the schema's migrations (Alembic)."""
