"""Planning's tables (migration 0030) on the shared Base."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.models import Base


class ItemPlanning(Base):
    __tablename__ = "item_planning"
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"), primary_key=True)
    lead_time_days: Mapped[int | None]
    safety_stock: Mapped[Decimal | None]
    lot_rule: Mapped[str] = mapped_column(default="lot_for_lot")
    lot_quantity: Mapped[Decimal | None]
    lot_periods: Mapped[int] = mapped_column(default=1)
    lot_minimum: Mapped[Decimal] = mapped_column(default=Decimal(0))
    lot_multiple: Mapped[Decimal | None]
    lot_maximum: Mapped[Decimal | None]
    updated_at: Mapped[datetime] = mapped_column(server_default="now()")


class PlanningForecast(Base):
    __tablename__ = "planning_forecasts"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"))
    bucket_start: Mapped[date]
    quantity: Mapped[Decimal]
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
