"""The plan's KPIs as reports: `GET /planning/kpis/{name}?format=json|csv|xlsx`, in the shape of the inventory
reports (`/reports/{name}`): on-time delivery of sales-order lines, supplier scores, forecast accuracy.
Definitions: `planning.services.kpis` and the rules it names."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from inventory.api.reports import RESPONSES, End, Format, ReportOut, Start, Tz, report_response, require_zoned, time_zone
from kernel.http import Db
from kernel.rules.refusals import Invalid
from planning.services import kpis

router = APIRouter()

KpiName = Literal["on-time-delivery", "supplier-scores", "forecast-accuracy"]
DEFAULT_PERIOD = timedelta(days=30)


@router.get("/planning/kpis/{name}", response_model=ReportOut, responses=RESPONSES)
def kpi_report(name: Annotated[KpiName, Path(description="which KPI")], db: Db, format: Format = "json",
               start: Start = None, end: End = None,
               as_of: Annotated[datetime | None, Query(description="judge lines and buckets as of this moment (default: now)")] = None,
               tz: Tz = "UTC",
               bucket: Annotated[Literal["day", "week"], Query(description="forecast accuracy: a forecast's bucket")] = "week"):
    """On-time delivery per month (against the due instant and the promise), supplier on-time / quality / score per
    month, or forecast accuracy and bias per item. Periods are [start, end), the 30 days up to now by default."""
    require_zoned(start=start, end=end, as_of=as_of)
    now = datetime.now(UTC)
    end = end or now
    try:
        start = start or end - DEFAULT_PERIOD
        for moment in (start, end, as_of or now):
            moment.astimezone(UTC)
    except OverflowError:
        raise Invalid("start, end and as_of must lie within the years 1 to 9999 in UTC") from None
    if end <= start:
        raise Invalid(f"the period ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    parameters = kpis.KpiParameters(start, end, as_of or now, time_zone(tz), bucket)
    return report_response(name, kpis.report(db, name, parameters), format)
