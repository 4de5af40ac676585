"""Inventory KPIs and reports, as JSON or as CSV / Excel downloads.

`GET /reports/{name}?format=json|csv|xlsx` gives one report; `GET /reports/workbook.xlsx` every report, one
sheet each, with the same parameters. Periods are [start, end) (default: the 30 days up to now); `as_of`
(default now) is the moment of the stock on hand. Timestamps need a time zone (2026-03-01T00:00:00+01:00 or
...Z). JSON gives money and quantities as strings in plain decimal notation, exact; CSV is exact too;
Excel holds numbers as binary doubles (see `inventory.rules.reports`).
"""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from inventory.rules.reports import to_csv_bytes, to_excel_bytes
from inventory.api.valued import ValuedDb
from kernel.rules.refusals import Invalid, refused_as
from inventory.services import reports as service

router = APIRouter()

ReportName = Literal["turnover", "days-of-supply", "aging", "value-by-location", "purchase-price-trend", "margins"]
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
WORKBOOK_FILENAME = "inventory-reports.xlsx"


class ReportOut(BaseModel):
    report: str
    columns: list[str]
    rows: list[dict[str, str | int | bool | None]] = Field(description="money and quantities as exact decimal strings")


Start = Annotated[datetime | None, Query(description="period start, included (default: end - 30 days)")]
End = Annotated[datetime | None, Query(description="period end, excluded (default: now)")]
AsOf = Annotated[datetime | None, Query(description="stock on hand at this moment (default: now)")]
Days = Annotated[int, Query(gt=0, le=3660, description="days of issues before as_of that set the pace (days of supply)")]
By = Annotated[str, Query(description="turnover per item_id, location_id, both (item_id,location_id) or plant")]
Bounds = Annotated[str, Query(description="aging: inclusive upper ends of the age buckets in days, rising")]
SupplierId = Annotated[str | None, Query(description="purchase price trend: this supplier's receipts only")]
Tz = Annotated[str, Query(description="purchase price trend: time zone of the calendar months (IANA name)")]
Format = Annotated[Literal["json", "csv", "xlsx"], Query(description="json, or a csv / xlsx download")]
RESPONSES = {200: {"content": {CSV_MEDIA_TYPE: {}, XLSX_MEDIA_TYPE: {}}, "description": "the report"}}


def _parameters(start: datetime | None, end: datetime | None, as_of: datetime | None, days: int, by: str, bounds: str,
                supplier_id: str | None, tz: str) -> service.ReportParameters:
    """The request's parameters checked, or 422 naming the one that is wrong."""
    require_zoned(start=start, end=end, as_of=as_of)
    zone = time_zone(tz)
    try:
        age_bounds = tuple(int(bound) for bound in bounds.split(","))
    except ValueError:
        raise Invalid(f"bounds must be whole numbers of days separated by commas (30,60,90), not {bounds!r}") from None
    grouping = tuple(column.strip() for column in by.split(",") if column.strip() and column.strip() != "plant")
    return service.ReportParameters.defaults(datetime.now(UTC), start, end, as_of, days=days, by=grouping,
                                             bounds=age_bounds, supplier_id=supplier_id, tz=zone)


def require_zoned(**moments: datetime | None) -> None:
    """422 for a moment given without a time zone."""
    for name, moment in moments.items():
        if moment is not None and moment.utcoffset() is None:
            raise Invalid(f"{name} needs a time zone: {moment.isoformat()} could be any of 24 instants "
                          "(add Z or an offset such as +01:00)")


def time_zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"tz {tz!r} is not a time zone name such as UTC or Europe/Berlin") from None


def _run(call):
    """A report's frame(s); a parameter the report rules refuse is a 422 with their message."""
    with refused_as(Invalid):
        return call()


@router.get("/reports/workbook.xlsx", response_class=Response,
            responses={200: {"content": {XLSX_MEDIA_TYPE: {}}, "description": "every report, one sheet each"}})
def workbook(db: ValuedDb, start: Start = None, end: End = None, as_of: AsOf = None, days: Days = 30, by: By = "item_id",
             bounds: Bounds = "30,60,90,180", supplier_id: SupplierId = None, tz: Tz = "UTC"):
    parameters = _parameters(start, end, as_of, days, by, bounds, supplier_id, tz)
    sheets = _run(lambda: service.every_report(db, parameters))
    return _download(to_excel_bytes(sheets), WORKBOOK_FILENAME, XLSX_MEDIA_TYPE)


@router.get("/reports/{name}", response_model=ReportOut, responses=RESPONSES)
def one_report(name: Annotated[ReportName, Path(description="which report")], db: ValuedDb,
               format: Format = "json",
               start: Start = None, end: End = None, as_of: AsOf = None, days: Days = 30, by: By = "item_id",
               bounds: Bounds = "30,60,90,180", supplier_id: SupplierId = None, tz: Tz = "UTC"):
    """Turnover, days of supply, aging buckets, value by location, purchase price trend or margin per shipped
    order; how each is defined: `inventory.rules.reports` and `inventory.services.reports`."""
    parameters = _parameters(start, end, as_of, days, by, bounds, supplier_id, tz)
    return report_response(name, _run(lambda: service.report(db, name, parameters)), format)


def report_response(name: str, frame: pd.DataFrame, format: Format) -> Response:
    """A report's frame as JSON (`ReportOut`), or as a CSV or Excel download named after the report."""
    if format == "csv":
        return _download(to_csv_bytes(frame), f"{name}.csv", CSV_MEDIA_TYPE)
    if format == "xlsx":
        return _download(to_excel_bytes({name: frame}), f"{name}.xlsx", XLSX_MEDIA_TYPE)
    return JSONResponse({"report": name, "columns": [str(column) for column in frame.columns],
                         "rows": [{str(column): _json(value) for column, value in zip(frame.columns, row, strict=True)}
                                  for row in frame.itertuples(index=False, name=None)]})


def _download(content: bytes, filename: str, media_type: str) -> Response:
    return Response(content, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _json(value: object) -> object:
    """A cell for JSON: Decimals as exact plain strings (never floats), missing values as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        raise TypeError(f"a float ({value!r}) reached a report: money and quantities must be Decimal to stay exact")
    return value
