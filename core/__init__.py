"""The core's ingest: MQTT messages → exact production records, composing the domains' pure rules
(counters and sequencing here; attribution from mes, backflush from inventory) in one transaction a batch."""
