"""MQTT → batches → plan (pure) → one transaction → acknowledgement."""
