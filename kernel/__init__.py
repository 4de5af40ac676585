"""The shared kernel: what every package of the system agrees on, and no domain.

The plant model (`plant`, `signals`), the wire contract between edges and core (`payload`), settings,
logging, the adapters to the outside (MQTT, PostgreSQL and its migrations, HTTP helpers, the embedded
services), the job supervisor, and the pure rules every domain uses (`rules`: exact quantities, aware
instants, status lifecycles, refusals). It imports no domain package (import-linter checks it).
"""
