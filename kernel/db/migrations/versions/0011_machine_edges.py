"""Which edge reads each machine: the plant file's assignment, registered with the machine.

The core refuses data and status for a machine from any other edge (core/rules/assignment.py). NULL:
no assignment on record (a machine registered before this revision), any edge may report it until
the core registers the plant file again, which it does at every start.
"""

from kernel.db.migrations.ddl import run

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("ALTER TABLE machines ADD COLUMN edge_id text")


def downgrade() -> None:
    run("ALTER TABLE machines DROP COLUMN edge_id")
