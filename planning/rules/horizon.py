"""The planning horizon: `count` buckets of one day or one week from `start`.

A week bucket runs seven days from `start` (whatever weekday that is), so a plan started on a Wednesday
has Wednesday-to-Tuesday weeks. A date before `start` falls in the first bucket (it is past due and
still has to be met); a date at or after the horizon's end falls in no bucket and is left out of the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

from kernel.rules.quantities import whole_number

BucketSize = Literal["day", "week"]
MAX_BUCKETS = 366  # a year of days, seven years of weeks: beyond that a plan is a guess, not a plan
DAYS_PER_BUCKET: dict[str, int] = {"day": 1, "week": 7}


@dataclass(frozen=True, slots=True)
class Horizon:
    start: date
    bucket: BucketSize
    count: int
    days: int = field(init=False, compare=False, repr=False)  # per bucket
    end: date = field(init=False, compare=False, repr=False)  # the first day after the horizon

    def __post_init__(self) -> None:
        if self.bucket not in DAYS_PER_BUCKET:
            raise ValueError(f"bucket must be 'day' or 'week', got {self.bucket!r}")
        whole_number(self.count, "buckets", least=1)
        if self.count > MAX_BUCKETS:
            raise ValueError(f"buckets must be at most {MAX_BUCKETS}, got {self.count}")
        # derived once: bucket_of runs for every demand and receipt of a plan
        object.__setattr__(self, "days", DAYS_PER_BUCKET[self.bucket])
        object.__setattr__(self, "end", self.start + timedelta(days=self.days * self.count))

    def bucket_start(self, index: int) -> date:
        return self.start + timedelta(days=self.days * index)

    def starts(self) -> list[date]:
        return [self.bucket_start(index) for index in range(self.count)]

    def bucket_of(self, on: date) -> int | None:
        """The bucket `on` falls in: 0 for a past date, None beyond the horizon."""
        if on >= self.end:
            return None
        return max(0, (on - self.start).days // self.days)
