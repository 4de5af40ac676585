"""The plant-wide rule of the planned_shortage alert (planning/services/shortage_alerts.py), seeded once as the
inventory alert kinds were (0004): the plan's purchase suggestions alert out of the box; a plant that deletes
the rule does not get it back. Downgrading removes the rule; its alerts stay, as history.
"""

from kernel.db.migrations.ddl import run

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("""INSERT INTO alert_rules (rule_id, kind, severity) VALUES ('planned-shortage', 'planned_shortage', 'warning')
           ON CONFLICT (rule_id) DO NOTHING""")


def downgrade() -> None:
    run("DELETE FROM alert_rules WHERE rule_id = 'planned-shortage'")
