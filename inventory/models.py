"""SQLAlchemy models of inventory's tables: items and BOMs, work centres, routings and energy tariffs,
locations, lots and the stock ledger, suppliers, customers and their documents."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

from sqlalchemy import ARRAY, ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kernel.db.models import Base


class Item(Base):
    __tablename__ = "items"
    item_id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    kind: Mapped[str]
    uom: Mapped[str]
    shelf_life_days: Mapped[int | None]
    standard_cost: Mapped[Decimal | None]
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
    valuation: Mapped[str] = mapped_column(default="moving_average")  # or 'fifo'
    safety_stock: Mapped[Decimal | None]
    reorder_quantity: Mapped[Decimal] = mapped_column(default=Decimal(0))
    minimum_order: Mapped[Decimal] = mapped_column(default=Decimal(0))
    order_multiple: Mapped[Decimal | None]


class BomLine(Base):
    __tablename__ = "bom_lines"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_item: Mapped[str] = mapped_column(ForeignKey("items.item_id"))
    component_item: Mapped[str] = mapped_column(ForeignKey("items.item_id"))
    quantity_per: Mapped[Decimal]
    scrap_factor: Mapped[Decimal] = mapped_column(default=Decimal(0))
    phantom: Mapped[bool] = mapped_column(default=False)
    effective_from: Mapped[date | None]
    effective_to: Mapped[date | None]


class WorkCentre(Base):
    __tablename__ = "work_centres"
    work_centre_id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    hourly_rate: Mapped[Decimal] = mapped_column(default=Decimal(0))
    tariff_id: Mapped[str | None] = mapped_column(ForeignKey("energy_tariffs.tariff_id"))


class Location(Base):
    __tablename__ = "locations"
    location_id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    kind: Mapped[str]
    line: Mapped[str | None]
    negative_stock: Mapped[str] = mapped_column(default="allow")


class Lot(Base):
    __tablename__ = "lots"
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"), primary_key=True)
    lot: Mapped[str] = mapped_column(primary_key=True)
    expires: Mapped[date | None]
    received_at: Mapped[datetime] = mapped_column(server_default="now()")


class StockMove(Base):
    """A ledger row. Its references are checked on its balance rows in the database (migration 0020); declared
    here too, so that a flush inserts the items and locations a move names before the move."""

    __tablename__ = "stock_moves"
    id: Mapped[int] = mapped_column(primary_key=True)
    ts: Mapped[datetime] = mapped_column(server_default="now()")
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"))
    lot: Mapped[str | None]
    from_location: Mapped[str | None] = mapped_column(ForeignKey("locations.location_id"))
    to_location: Mapped[str | None] = mapped_column(ForeignKey("locations.location_id"))
    quantity: Mapped[Decimal]
    unit_cost: Mapped[Decimal | None]
    reason: Mapped[str]
    source_ref: Mapped[str]
    work_order_id: Mapped[str | None]


class Supplier(Base):
    __tablename__ = "suppliers"
    supplier_id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    email: Mapped[str | None]


class Customer(Base):
    __tablename__ = "customers"
    customer_id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    email: Mapped[str | None]


class ApprovalThreshold(Base):
    __tablename__ = "approval_thresholds"
    document: Mapped[str] = mapped_column(primary_key=True)
    above_value: Mapped[Decimal] = mapped_column(primary_key=True)
    approvals: Mapped[int]


class PurchaseOrder(Base):
    __tablename__ = "purchase_orders"
    po_id: Mapped[str] = mapped_column(primary_key=True)
    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.supplier_id"))
    status: Mapped[str] = mapped_column(default="draft")
    created_by: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
    due: Mapped[date | None]
    tolerance: Mapped[Decimal] = mapped_column(default=Decimal(0))
    lines: Mapped[list[PurchaseOrderLine]] = relationship(order_by="PurchaseOrderLine.line")


class PurchaseOrderLine(Base):
    __tablename__ = "purchase_order_lines"
    po_id: Mapped[str] = mapped_column(ForeignKey("purchase_orders.po_id"), primary_key=True)
    line: Mapped[str] = mapped_column(primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"))
    quantity: Mapped[Decimal]
    unit_cost: Mapped[Decimal]
    received: Mapped[Decimal] = mapped_column(default=Decimal(0))


class SalesOrder(Base):
    __tablename__ = "sales_orders"
    so_id: Mapped[str] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.customer_id"))
    status: Mapped[str] = mapped_column(default="open")
    due: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
    tolerance: Mapped[Decimal] = mapped_column(default=Decimal(0))
    lines: Mapped[list[SalesOrderLine]] = relationship(order_by="SalesOrderLine.line")


class SalesOrderLine(Base):
    __tablename__ = "sales_order_lines"
    so_id: Mapped[str] = mapped_column(ForeignKey("sales_orders.so_id"), primary_key=True)
    line: Mapped[str] = mapped_column(primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"))
    quantity: Mapped[Decimal]
    unit_price: Mapped[Decimal]
    shipped: Mapped[Decimal] = mapped_column(default=Decimal(0))
    promised: Mapped[date | None] = mapped_column(default=None)  # the day promised when the order was entered
    promise_source: Mapped[str | None] = mapped_column(default=None)


class Transfer(Base):
    __tablename__ = "transfers"
    transfer_id: Mapped[str] = mapped_column(primary_key=True)
    from_location: Mapped[str] = mapped_column(ForeignKey("locations.location_id"))
    to_location: Mapped[str] = mapped_column(ForeignKey("locations.location_id"))
    status: Mapped[str] = mapped_column(default="requested")
    requested_by: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
    lines: Mapped[list[TransferLine]] = relationship(order_by="TransferLine.item_id")


class TransferLine(Base):
    __tablename__ = "transfer_lines"
    transfer_id: Mapped[str] = mapped_column(ForeignKey("transfers.transfer_id"), primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"), primary_key=True)
    quantity: Mapped[Decimal]


class Stocktake(Base):
    __tablename__ = "stocktakes"
    stocktake_id: Mapped[str] = mapped_column(primary_key=True)
    location_id: Mapped[str] = mapped_column(ForeignKey("locations.location_id"))
    status: Mapped[str] = mapped_column(default="counting")
    complete: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")


class DocumentEvent(Base):
    """The audit trail of every document: who did what, when, from which status to which."""

    __tablename__ = "document_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    document: Mapped[str]  # purchase_order, sales_order, transfer, stocktake, return
    document_id: Mapped[str]
    ts: Mapped[datetime] = mapped_column(server_default="now()")
    action: Mapped[str]
    from_status: Mapped[str | None]
    to_status: Mapped[str | None]
    actor: Mapped[str | None]
    note: Mapped[str | None]


class EnergyTariff(Base):
    __tablename__ = "energy_tariffs"
    tariff_id: Mapped[str] = mapped_column(primary_key=True)
    timezone: Mapped[str]
    default_price_per_kwh: Mapped[Decimal]


class EnergyTariffPeriod(Base):
    __tablename__ = "energy_tariff_periods"
    id: Mapped[int] = mapped_column(primary_key=True)
    tariff_id: Mapped[str] = mapped_column(ForeignKey("energy_tariffs.tariff_id"))
    days: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    start_time: Mapped[time]
    end_time: Mapped[time]
    price_per_kwh: Mapped[Decimal]


class Routing(Base):
    """How a made item is made, for its standard cost: where, how fast, with what energy and labour."""

    __tablename__ = "routings"
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"), primary_key=True)
    work_centre_id: Mapped[str] = mapped_column(ForeignKey("work_centres.work_centre_id"))
    ideal_cycle_s: Mapped[Decimal]
    energy_wh_per_unit: Mapped[Decimal] = mapped_column(default=Decimal(0))
    labour_s_per_unit: Mapped[Decimal] = mapped_column(default=Decimal(0))
    labour_rate: Mapped[Decimal] = mapped_column(default=Decimal(0))
