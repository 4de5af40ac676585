"""Services the project can run by itself when no external PostgreSQL or MQTT broker is configured."""

from kernel.embedded.broker import EmbeddedBroker
from kernel.embedded.postgres import EmbeddedPostgres, create_database, drop_database

__all__ = ["EmbeddedBroker", "EmbeddedPostgres", "create_database", "drop_database"]
