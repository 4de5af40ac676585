"""The small make-to-stock line several core tests start from: a cap made of 0.5 kg resin each, resin stocked
on line l's line side, one work order for caps running on a machine of that line."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from inventory.models import Item
from inventory.services import masterdata, stock
from mes.services import workorders


def cap_order_running(session: Session, work_order_id: str, quantity: int, *, machine_id: str, started_at: datetime,
                      resin_kg: Decimal, resin_unit_cost: Decimal | None = None, negative_stock: str | None = None,
                      auto_complete: bool = False) -> None:
    for item_id, kind, uom in (("cap", "make", "pcs"), ("resin", "buy", "kg")):
        masterdata.create(session, Item, item_id, "item", item_id=item_id, name=item_id, kind=kind, uom=uom)
    masterdata.add_bom_line(session, "cap", "resin", Decimal("0.5"))
    location = {"negative_stock": negative_stock} if negative_stock else {}
    masterdata.create_location(session, location_id="l-side", name="Line l", kind="line_side", line="l", **location)
    stock.receive(session, "resin", "R1", "l-side", resin_kg, source_ref="GR-1", unit_cost=resin_unit_cost)
    workorders.create_work_order(session, work_order_id, "cap", quantity, auto_complete=auto_complete)
    workorders.act(session, work_order_id, "release")
    workorders.act(session, work_order_id, "start", machine_id=machine_id, now=started_at)
