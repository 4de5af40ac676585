"""Downtime reasons, the shift calendar, edge status history, and alert notifications.

Machine state intervals are derived on read from `machine_states` and the communication record
(`edge_status_events`, `ingested_messages`), never stored: one rule derives them everywhere. A stop is
identified by its machine and start instant; the reasons people give it are append-only
(`downtime_annotations`, the latest one counts) on top of the automatic one from its fault code.
Notifications follow the outbox pattern: each alert event gets one `notification_deliveries` row per
target in the transaction that records the event.
"""

from kernel.db.migrations.ddl import run

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("""
    CREATE TABLE edge_status_events (
        id                  bigserial PRIMARY KEY,
        edge_id             text NOT NULL,
        online              boolean NOT NULL,
        epoch               bigint,
        machines            text[] NOT NULL DEFAULT '{}',
        received_at         timestamptz NOT NULL
    )""")
    run("CREATE INDEX edge_status_events_edge ON edge_status_events (edge_id, received_at)")
    run("CREATE INDEX ingested_messages_machine_received ON ingested_messages (machine_id, received_at)")
    run("""
    CREATE TABLE downtime_reasons (
        code                text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$'),
        description         text NOT NULL,
        planned             boolean NOT NULL DEFAULT false,
        active              boolean NOT NULL DEFAULT true
    )""")
    run("""
    CREATE TABLE fault_reasons (
        machine_id          text REFERENCES machines,           -- NULL: every machine
        fault_code          integer NOT NULL CHECK (fault_code > 0),
        reason_code         text NOT NULL REFERENCES downtime_reasons
    )""")
    run("CREATE UNIQUE INDEX fault_reasons_key ON fault_reasons (coalesce(machine_id, ''), fault_code)")
    run("""
    CREATE TABLE downtime_annotations (
        id                  bigserial PRIMARY KEY,
        machine_id          text NOT NULL REFERENCES machines,
        stop_start          timestamptz NOT NULL,
        reason_code         text REFERENCES downtime_reasons,
        comment             text,
        actor               text NOT NULL,
        ts                  timestamptz NOT NULL DEFAULT now(),
        CHECK (reason_code IS NOT NULL OR comment IS NOT NULL)
    )""")
    run("CREATE INDEX downtime_annotations_stop ON downtime_annotations (machine_id, stop_start, id)")
    run("""
    CREATE TABLE calendar_settings (
        only_row            boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        timezone            text NOT NULL
    )""")
    run("INSERT INTO calendar_settings (timezone) VALUES ('UTC')")
    run("""
    CREATE TABLE shift_patterns (
        name                text PRIMARY KEY,
        weekdays            integer[] NOT NULL,
        start_time          time NOT NULL,
        end_time            time NOT NULL
    )""")
    run("""
    CREATE TABLE shift_breaks (
        id                  bigserial PRIMARY KEY,
        shift_name          text NOT NULL REFERENCES shift_patterns ON DELETE CASCADE,
        start_time          time NOT NULL,
        end_time            time NOT NULL
    )""")
    run("""
    CREATE TABLE non_production (
        id                  bigserial PRIMARY KEY,
        start_ts            timestamptz NOT NULL,
        end_ts              timestamptz NOT NULL,
        reason              text NOT NULL DEFAULT '',
        CHECK (start_ts <= end_ts)
    )""")
    run("""
    CREATE TABLE webhooks (
        webhook_id          text PRIMARY KEY,
        url                 text NOT NULL CHECK (url ~ '^https?://'),
        active              boolean NOT NULL DEFAULT true,
        created_at          timestamptz NOT NULL DEFAULT now()
    )""")
    run("""
    CREATE TABLE notification_deliveries (
        id                  bigserial PRIMARY KEY,
        alert_event_id      bigint NOT NULL REFERENCES alert_events,
        target              text NOT NULL,                      -- 'mqtt' or 'webhook:<id>'
        attempts            integer NOT NULL DEFAULT 0,
        next_attempt_at     timestamptz NOT NULL DEFAULT now(),
        delivered_at        timestamptz,
        last_error          text,
        UNIQUE (alert_event_id, target)
    )""")
    run("CREATE INDEX notification_deliveries_pending ON notification_deliveries (target, id) WHERE delivered_at IS NULL")


def downgrade() -> None:
    raise NotImplementedError("drop the database instead")
