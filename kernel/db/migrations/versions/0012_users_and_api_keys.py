"""Who may call the API: local users (argon2 password hashes) and API keys (SHA-256 of a random secret).

Roles are the names of `kernel.auth.Role`; what each role may do is the table in `app/permissions.py`
(docs/security.md). A key is never deleted, only revoked, so the audit rows that name it stay readable.
"""

from kernel.db.migrations.ddl import run

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

ROLES = "ARRAY['viewer','operator','supervisor','planner','inventory','admin']"


def upgrade() -> None:
    run(f"""
    CREATE TABLE users (
        user_id         text PRIMARY KEY CHECK (user_id ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{{0,127}}$'),
        password_hash   text NOT NULL,
        roles           text[] NOT NULL CHECK (roles <@ {ROLES}),
        created_at      timestamptz NOT NULL DEFAULT now(),
        disabled_at     timestamptz
    )""")
    run(f"""
    CREATE TABLE api_keys (
        key_id          text PRIMARY KEY CHECK (key_id ~ '^[a-f0-9]{{12}}$'),
        name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        secret_sha256   text NOT NULL,
        roles           text[] NOT NULL CHECK (roles <@ {ROLES}),
        created_at      timestamptz NOT NULL DEFAULT now(),
        created_by      text NOT NULL,
        revoked_at      timestamptz
    )""")


def downgrade() -> None:
    run("DROP TABLE api_keys")
    run("DROP TABLE users")
