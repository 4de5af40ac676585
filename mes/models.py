"""SQLAlchemy models of production's tables: work orders, their components, events, labour and
dispatches, scrap reasons and classifications, and the ideal cycle of an item on a machine."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column, relationship

import inventory.models  # noqa: F401  (the tables these foreign keys name: items)
from kernel.db.models import Base


class WorkOrder(Base):
    __tablename__ = "work_orders"
    work_order_id: Mapped[str] = mapped_column(primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"))
    quantity: Mapped[int]
    due: Mapped[date | None]
    status: Mapped[str] = mapped_column(default="planned")
    over_tolerance: Mapped[Decimal] = mapped_column(default=Decimal(0))
    auto_complete: Mapped[bool] = mapped_column(default=False)
    held_reason: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
    released_at: Mapped[datetime | None]
    components: Mapped[list[WorkOrderComponent]] = relationship(order_by="WorkOrderComponent.component_item")


class WorkOrderComponent(Base):
    __tablename__ = "work_order_components"
    work_order_id: Mapped[str] = mapped_column(ForeignKey("work_orders.work_order_id"), primary_key=True)
    component_item: Mapped[str] = mapped_column(ForeignKey("items.item_id"), primary_key=True)
    quantity_per_unit: Mapped[Decimal]


class WorkOrderEvent(Base):
    __tablename__ = "work_order_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    work_order_id: Mapped[str] = mapped_column(ForeignKey("work_orders.work_order_id"))
    ts: Mapped[datetime] = mapped_column(server_default="now()")
    action: Mapped[str]
    from_status: Mapped[str]
    to_status: Mapped[str]
    machine_id: Mapped[str | None]
    actor: Mapped[str | None]


class Dispatch(Base):
    __tablename__ = "dispatches"
    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[str] = mapped_column(ForeignKey("machines.machine_id"))
    work_order_id: Mapped[str | None] = mapped_column(ForeignKey("work_orders.work_order_id"))  # None: see reported_order
    source: Mapped[str]
    start_ts: Mapped[datetime]
    end_ts: Mapped[datetime | None]
    reported_order: Mapped[str | None]  # the id a PLC reported (source 'plc')
    rejected_reason: Mapped[str | None]  # why that id counts for no work order


class ScrapReason(Base):
    __tablename__ = "scrap_reasons"
    code: Mapped[str] = mapped_column(primary_key=True)
    description: Mapped[str]
    active: Mapped[bool] = mapped_column(default=True)


class ScrapClassification(Base):
    __tablename__ = "scrap_classifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    work_order_id: Mapped[str] = mapped_column(ForeignKey("work_orders.work_order_id"))
    reason_code: Mapped[str] = mapped_column(ForeignKey("scrap_reasons.code"))
    quantity: Mapped[int]
    comment: Mapped[str | None]
    actor: Mapped[str | None]
    ts: Mapped[datetime]


class MachineItem(Base):
    __tablename__ = "machine_items"
    machine_id: Mapped[str] = mapped_column(ForeignKey("machines.machine_id"), primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"), primary_key=True)
    ideal_cycle_s: Mapped[Decimal]


class WorkOrderLabour(Base):
    __tablename__ = "work_order_labour"
    id: Mapped[int] = mapped_column(primary_key=True)
    work_order_id: Mapped[str] = mapped_column(ForeignKey("work_orders.work_order_id"))
    hours: Mapped[Decimal]
    rate: Mapped[Decimal]
    actor: Mapped[str | None]
    ts: Mapped[datetime] = mapped_column(server_default="now()")
