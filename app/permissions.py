"""What each role may do over the API: the one table, checked on every request and rendered into
docs/security.md (`python -m app.permissions` prints it; a test keeps the document current).

Reads (GET) are open to every role, the read-only `viewer` (a kiosk's board) included, except the
accounts (users and keys), which only `admin` sees. Each write names the roles that may make it; `admin`
may make every write. A route missing from the table is refused to everyone but `admin` (and a test fails):
a new write route must be given its roles here. Public, without any credentials: liveness and readiness,
the API's metrics (for Prometheus; counts and durations by route template, nothing of a request), the
OpenAPI document and its viewers, and the board's pages and assets (their data needs a key).
"""

from __future__ import annotations

from fastapi import HTTPException, Request

from kernel.auth import Role, caller

OPERATOR, SUPERVISOR, PLANNER, INVENTORY, ADMIN = Role.operator, Role.supervisor, Role.planner, Role.inventory, Role.admin

# /metrics: Prometheus scrapes without credentials; it shows request counts and durations by route template
# only (app/health.py), nothing a caller sent
PUBLIC = frozenset({("GET", "/health"), ("GET", "/ready"), ("GET", "/health/live"), ("GET", "/health/ready"),
                    ("GET", "/metrics"), ("GET", "/board"), ("GET", "/board/planner"), ("GET", "/board/{asset}")})
ADMIN_ONLY_PREFIXES = ("/users", "/api-keys")

WRITES: dict[tuple[str, str], frozenset[Role]] = {key: frozenset(roles) for key, roles in {
    # inventory master data
    ("POST", "/items"): (PLANNER, INVENTORY),
    ("PATCH", "/items/{item_id}"): (PLANNER, INVENTORY),
    ("POST", "/items/{item_id}/bom"): (PLANNER,),
    ("POST", "/work-centres"): (PLANNER,),
    ("PATCH", "/work-centres/{work_centre_id}"): (PLANNER,),
    ("POST", "/locations"): (INVENTORY,),
    # production master data
    ("PATCH", "/machines/{machine_id}"): (SUPERVISOR, PLANNER),
    ("PUT", "/machines/{machine_id}/items/{item_id}"): (SUPERVISOR, PLANNER),
    ("POST", "/scrap-reasons"): (SUPERVISOR,),
    ("POST", "/downtime-reasons"): (SUPERVISOR,),
    ("PUT", "/fault-reasons"): (SUPERVISOR,),
    ("PUT", "/calendar"): (SUPERVISOR, PLANNER),
    ("POST", "/calendar/non-production"): (SUPERVISOR, PLANNER),
    ("DELETE", "/calendar/non-production/{period_id}"): (SUPERVISOR, PLANNER),
    # costing
    ("PUT", "/energy-tariffs/{tariff_id}"): (PLANNER,),
    ("PUT", "/items/{item_id}/routing"): (PLANNER,),
    ("POST", "/work-orders/{work_order_id}/labour"): (OPERATOR, SUPERVISOR),
    # stock, purchasing, sales
    ("POST", "/stock/receipts"): (INVENTORY,),
    ("POST", "/suppliers"): (PLANNER, INVENTORY),
    ("POST", "/purchase-orders"): (PLANNER, INVENTORY),
    ("POST", "/purchase-orders/{po_id}/submit"): (PLANNER, INVENTORY),
    ("POST", "/purchase-orders/{po_id}/approve"): (SUPERVISOR,),
    ("POST", "/purchase-orders/{po_id}/reject"): (SUPERVISOR,),
    ("POST", "/purchase-orders/{po_id}/cancel"): (PLANNER, INVENTORY),
    ("POST", "/purchase-orders/{po_id}/close"): (PLANNER, INVENTORY),
    ("POST", "/purchase-orders/{po_id}/receipts"): (INVENTORY,),
    ("POST", "/purchase-orders/{po_id}/returns"): (INVENTORY,),
    ("POST", "/customers"): (PLANNER,),
    ("POST", "/sales-orders"): (PLANNER,),
    ("POST", "/sales-orders/{so_id}/cancel"): (PLANNER,),
    ("POST", "/sales-orders/{so_id}/close"): (PLANNER,),
    ("POST", "/sales-orders/{so_id}/shipments"): (INVENTORY,),
    ("POST", "/sales-orders/{so_id}/returns"): (INVENTORY,),
    # transfers and stocktakes
    ("POST", "/transfers"): (INVENTORY,),
    ("POST", "/transfers/{transfer_id}/approve"): (SUPERVISOR, INVENTORY),
    ("POST", "/transfers/{transfer_id}/ship"): (INVENTORY,),
    ("POST", "/transfers/{transfer_id}/receive"): (INVENTORY,),
    ("POST", "/transfers/{transfer_id}/write-off"): (SUPERVISOR, INVENTORY),
    ("POST", "/transfers/{transfer_id}/post"): (INVENTORY,),
    ("POST", "/transfers/{transfer_id}/cancel"): (INVENTORY,),
    ("POST", "/stocktakes"): (INVENTORY,),
    ("PUT", "/stocktakes/{stocktake_id}/counts"): (INVENTORY,),
    ("POST", "/stocktakes/{stocktake_id}/post"): (SUPERVISOR, INVENTORY),
    ("POST", "/stocktakes/{stocktake_id}/cancel"): (INVENTORY,),
    # the shop floor
    ("POST", "/work-orders"): (PLANNER,),
    ("POST", "/work-orders/{work_order_id}/{action}"): (OPERATOR, SUPERVISOR, PLANNER),
    ("POST", "/work-orders/{work_order_id}/release-hold"): (SUPERVISOR,),
    ("POST", "/work-orders/{work_order_id}/scrap"): (OPERATOR, SUPERVISOR),
    ("POST", "/production/reassign"): (SUPERVISOR,),
    ("POST", "/machines/{machine_id}/stops/{stop_start}/annotations"): (OPERATOR, SUPERVISOR),
    # alerts and where they go
    ("POST", "/alerts/{alert_id}/acknowledge"): (OPERATOR, SUPERVISOR, INVENTORY),
    ("POST", "/alerts/evaluate-inventory"): (SUPERVISOR, PLANNER, INVENTORY),
    ("PUT", "/alert-rules/{rule_id}"): (SUPERVISOR,),
    ("DELETE", "/alert-rules/{rule_id}"): (SUPERVISOR,),
    ("POST", "/alert-rules/defaults"): (SUPERVISOR,),
    ("PUT", "/webhooks/{webhook_id}"): (SUPERVISOR,),
    ("DELETE", "/webhooks/{webhook_id}"): (SUPERVISOR,),
    # what the ingest set aside
    ("POST", "/review/quarantine/{step_id}/accept"): (SUPERVISOR,),
    ("POST", "/review/quarantine/{step_id}/reject"): (SUPERVISOR,),
    ("POST", "/review/dead-letters/{letter_id}/dismiss"): (SUPERVISOR,),
    ("POST", "/review/dead-letters/{letter_id}/reingest"): (SUPERVISOR,),
    ("POST", "/review/dead-letters/reingest"): (SUPERVISOR,),
    # planning
    ("PUT", "/items/{item_id}/planning"): (PLANNER,),
    ("POST", "/planning/forecasts"): (PLANNER,),
    ("POST", "/planning/runs"): (PLANNER,),
    ("POST", "/planning/runs/live/regenerate"): (PLANNER,),
    ("POST", "/planning/promise"): (PLANNER,),
    ("POST", "/planning/planned-orders/firm"): (PLANNER,),
    ("POST", "/planning/planned-orders/{planned_order_id}/firm"): (PLANNER,),
}.items()}

READS = frozenset(Role)


def allowed_roles(method: str, path: str) -> frozenset[Role] | None:
    """The roles that may call `method path` (a route's path template); None: anyone, unauthenticated."""
    method = "GET" if method == "HEAD" else method
    if (method, path) in PUBLIC:
        return None
    if path.startswith(ADMIN_ONLY_PREFIXES):
        return frozenset({ADMIN})
    if method == "GET":
        return READS
    return WRITES.get((method, path), frozenset()) | {ADMIN}


def authorize(request: Request) -> None:
    """Every route's first dependency: 401 without valid credentials, 403 for a principal none of whose roles
    may call the request's route; nothing for a public route."""
    route = request.scope.get("route")
    roles = allowed_roles(request.method, getattr(route, "path", request.url.path))
    if roles is None:
        return
    principal = caller(request)
    if not principal.roles & roles:
        needed = ", ".join(sorted(roles, key=list(Role).index))
        raise HTTPException(403, f"{principal.name} may not {request.method} {getattr(route, 'path', '')}: "
                                 f"it needs one of the roles {needed}")


def render_table(operations: list[tuple[str, str]]) -> str:
    """The Markdown table of who may call each operation, in the order given."""
    lines = ["| operation | roles |", "|---|---|"]
    for method, path in operations:
        roles = allowed_roles(method, path)
        shown = "anyone (no credentials)" if roles is None else (
            "every role" if roles == READS else ", ".join(sorted(roles, key=list(Role).index)))
        lines.append(f"| `{method} {path}` | {shown} |")
    return "\n".join(lines)


if __name__ == "__main__":
    from app.api import operations
    print(render_table(operations()))
