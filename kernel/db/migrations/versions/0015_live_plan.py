"""The maintained live plan, and the marks that say which items changed since it was brought up to date.

The live plan is a run like the stored ones (`planning_runs.live`, at most one), kept up to date item by
item (net change, docs/planning.md "The live plan"): each item's rows carry its id, and a replanned item's
rows are replaced. So that an item can be replanned from its stored part, a run now also keeps every
item's demands (its own and the dependent demand its parents placed, with the parent and the place among
what that parent placed) and supplies; exceptions and pegs keep their place within the item.

`planning_marks` is written by triggers in the transaction of whatever changes a plan's input, whichever
layer writes it (the core's ingest, inventory documents, work-order services, the API): the item whose stock,
sales-order or purchase-order lines, forecasts or planning parameters changed; the work order whose status,
quantity, due date, component snapshot, dispatches or counted production changed (the planner resolves it
to the order's item and components); or neither (item and work order NULL): what every item's plan depends
on changed (a BOM line, the machines of a work centre, the shift calendar), and the whole plan is
regenerated. Marks are appended, never updated, so writers never wait for one another or for the planner,
which deletes the marks it has brought into the plan. Each marking transaction also notifies
`planning_marks` at its commit (one notification a transaction, whatever it marked): the planner listens.
"""

from kernel.db.migrations.ddl import run

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None

# (table, events, the marks to write from its transition tables; `changed` is new rows, or old ones on DELETE)
ITEM_MARKS = [
    ("stock_moves", "INSERT", "SELECT DISTINCT item_id, NULL FROM changed"),
    ("sales_order_lines", "INSERT OR UPDATE OR DELETE", "SELECT DISTINCT item_id, NULL FROM changed"),
    ("purchase_order_lines", "INSERT OR UPDATE OR DELETE", "SELECT DISTINCT item_id, NULL FROM changed"),
    ("sales_orders", "UPDATE",
     "SELECT DISTINCT l.item_id, NULL FROM changed c JOIN sales_order_lines l USING (so_id)"),
    ("purchase_orders", "UPDATE",
     "SELECT DISTINCT l.item_id, NULL FROM changed c JOIN purchase_order_lines l USING (po_id)"),
    ("planning_forecasts", "INSERT OR UPDATE OR DELETE", "SELECT DISTINCT item_id, NULL FROM changed"),
    ("item_planning", "INSERT OR UPDATE OR DELETE", "SELECT DISTINCT item_id, NULL FROM changed"),
    ("items", "INSERT OR UPDATE", "SELECT DISTINCT item_id, NULL FROM changed"),
    ("routings", "INSERT OR UPDATE OR DELETE", "SELECT DISTINCT item_id, NULL FROM changed"),
    ("work_orders", "INSERT OR UPDATE OR DELETE", "SELECT DISTINCT NULL, work_order_id FROM changed"),
    ("work_order_components", "INSERT OR UPDATE OR DELETE", "SELECT DISTINCT NULL, work_order_id FROM changed"),
    ("dispatches", "INSERT OR UPDATE", "SELECT DISTINCT NULL, work_order_id FROM changed"),
    ("production_attributions", "INSERT OR UPDATE",
     "SELECT DISTINCT NULL, work_order_id FROM changed WHERE work_order_id IS NOT NULL"),
]
REGENERATE_ON = ["bom_lines", "machines", "calendar_settings", "shift_patterns", "shift_breaks", "non_production"]


def upgrade() -> None:
    run("ALTER TABLE planning_runs ADD COLUMN live boolean NOT NULL DEFAULT false")
    run("ALTER TABLE planning_runs ADD COLUMN regenerated_at timestamptz")
    run("ALTER TABLE planning_runs ADD COLUMN changed_at timestamptz")
    run("CREATE UNIQUE INDEX planning_runs_one_live ON planning_runs (live) WHERE live")
    for table in ("planning_exceptions", "planning_pegs"):
        run(f"ALTER TABLE {table} ADD COLUMN position integer NOT NULL DEFAULT 0")
    run("""
    CREATE TABLE planning_demands (
        run_id              bigint NOT NULL REFERENCES planning_runs ON DELETE CASCADE,
        item_id             text NOT NULL,
        position            integer NOT NULL,
        demand_id           text NOT NULL,
        due                 date NOT NULL,
        quantity            numeric NOT NULL,
        kind                text NOT NULL,
        parent_supply       text,
        placed_by           text,
        placed_position     integer,
        PRIMARY KEY (run_id, item_id, position)
    )""")
    run("CREATE INDEX planning_demands_placed_by ON planning_demands (run_id, placed_by) WHERE placed_by IS NOT NULL")
    run("CREATE INDEX planning_demands_of_order ON planning_demands (run_id, parent_supply) WHERE parent_supply IS NOT NULL")
    run("""
    CREATE TABLE planning_supplies (
        run_id              bigint NOT NULL REFERENCES planning_runs ON DELETE CASCADE,
        item_id             text NOT NULL,
        position            integer NOT NULL,
        supply_id           text NOT NULL,
        due                 date NOT NULL,
        quantity            numeric NOT NULL,
        kind                text NOT NULL,
        PRIMARY KEY (run_id, item_id, position)
    )""")
    for table in ("planning_planned_orders", "planning_exceptions", "planning_pegs"):
        run(f"CREATE INDEX {table}_item ON {table} (run_id, item_id)")

    run("""
    CREATE TABLE planning_marks (
        id              bigserial PRIMARY KEY,
        item_id         text,
        work_order_id   text,
        marked_at       timestamptz NOT NULL DEFAULT now()
    )""")
    for table, events, marks in ITEM_MARKS:
        _mark_trigger(table, events, marks)
    # net change loads the open orders of a few items
    for table in ("sales_order_lines", "purchase_order_lines"):
        run(f"CREATE INDEX {table}_item ON {table} (item_id)")
    for table in REGENERATE_ON:
        _mark_trigger(table, "INSERT OR UPDATE OR DELETE", "SELECT NULL, NULL")


def _mark_trigger(table: str, events: str, marks: str) -> None:
    """A statement trigger per event (a transition table belongs to one event): the marks of what changed."""
    for event in events.split(" OR "):
        name = f"planning_mark_{table}_{event.lower()}"
        changed = "old_rows" if event == "DELETE" else "new_rows"
        transition = "" if marks == "SELECT NULL, NULL" else f"REFERENCING {'OLD' if event == 'DELETE' else 'NEW'} TABLE AS {changed}"
        run(f"""
        CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO planning_marks (item_id, work_order_id)
                {marks.replace('FROM changed', f'FROM {changed}')};
            PERFORM pg_notify('planning_marks', '');  -- at commit, once a transaction: wakes the planner
            RETURN NULL;
        END $$""")
        run(f"CREATE TRIGGER {name} AFTER {event} ON {table} {transition} FOR EACH STATEMENT EXECUTE FUNCTION {name}()")


def downgrade() -> None:
    for table, events, _ in ITEM_MARKS:
        _drop_triggers(table, events)
    for table in REGENERATE_ON:
        _drop_triggers(table, "INSERT OR UPDATE OR DELETE")
    run("DROP TABLE planning_marks")
    for table in ("sales_order_lines", "purchase_order_lines"):
        run(f"DROP INDEX {table}_item")
    for table in ("planning_planned_orders", "planning_exceptions", "planning_pegs"):
        run(f"DROP INDEX {table}_item")
    run("DROP TABLE planning_supplies")
    run("DROP TABLE planning_demands")
    for table in ("planning_exceptions", "planning_pegs"):
        run(f"ALTER TABLE {table} DROP COLUMN position")
    run("DELETE FROM planning_runs WHERE live")
    run("DROP INDEX planning_runs_one_live")
    for column in ("live", "regenerated_at", "changed_at"):
        run(f"ALTER TABLE planning_runs DROP COLUMN {column}")


def _drop_triggers(table: str, events: str) -> None:
    for event in events.split(" OR "):
        name = f"planning_mark_{table}_{event.lower()}"
        run(f"DROP TRIGGER {name} ON {table}")
        run(f"DROP FUNCTION {name}()")
