"""The figures of a group of dispatches, cases or transfers: what adds up
across days and groups (counts, sums) and every processing time, from which
the median and 90th percentile are found exactly."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import func, select

from app.services.reports.dialect import as_int, elapsed_seconds, overdue, packed_seconds, unpack


@dataclass(frozen=True)
class Satisfaction:
    responses: int = 0
    rating_sum: int = 0
    rating_count: int = 0


@dataclass
class Tally:
    """What adds up across days and groups: counts, sums and every processing
    time (the percentiles need them all to stay exact)."""

    n: int = 0
    done: int = 0
    seconds: int = 0
    late: int = 0
    responses: int = 0
    rating_sum: int = 0
    rating_count: int = 0
    sums: dict = field(default_factory=dict)
    chunks: list = field(default_factory=list)  # numpy arrays of whole seconds

    def add(self, other: Tally) -> Tally:
        self.n += other.n
        self.done += other.done
        self.seconds += other.seconds
        self.late += other.late
        self.responses += other.responses
        self.rating_sum += other.rating_sum
        self.rating_count += other.rating_count
        for name, value in other.sums.items():
            self.sums[name] = self.sums.get(name, 0) + value
        self.chunks.extend(other.chunks)
        return self

    def figures(self) -> dict:
        """n, done, mean, median, p90 (days), late and the extra sums."""
        out = {"n": self.n, "done": self.done, "late": self.late, **self.sums}
        out["mean"] = self.seconds / self.done / 86400 if self.done else None
        out["median"], out["p90"] = percentiles(self.chunks, (0.5, 0.9))
        return out

    @property
    def satisfaction(self) -> Satisfaction:
        return Satisfaction(self.responses, self.rating_sum, self.rating_count)


def percentiles(chunks: list, fractions: tuple[float, ...]) -> list[float | None]:
    """Days at each fraction ``p`` of the seconds in ``chunks``, interpolated
    as PostgreSQL's ``percentile_cont`` does: between the values at sorted
    positions floor(p·(m−1)) and the next one. A partial sort finds them in
    linear time."""
    values = np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int32)
    count = len(values)
    if not count:
        return [None for _ in fractions]
    spots = [(p * (count - 1), math.floor(p * (count - 1))) for p in fractions]
    wanted = sorted({k for _, low in spots for k in (low, min(low + 1, count - 1))})
    part = np.partition(values, wanted)
    out = []
    for position, low in spots:
        first, second = int(part[low]) / 86400.0, int(part[min(low + 1, count - 1)]) / 86400.0
        out.append(first + (position - low) * (second - first))
    return out


def rollup(tallies: dict[tuple, Tally], level: Callable[[tuple], object]) -> dict:
    """The tallies added up per ``level(key)``."""
    out: dict = {}
    for key, tally in tallies.items():
        out.setdefault(level(key), Tally()).add(tally)
    return out


def overall(tallies: dict[tuple, Tally]) -> Tally:
    """Every tally added up."""
    return rollup(tallies, lambda key: ()).get((), Tally())


@dataclass(frozen=True)
class Timing:
    """The columns of a live table that time its rows."""

    start: object
    done: object
    due: object = None
    now: object = None


def live_tallies(
    session, source, keys: list, where: list, timing: Timing, sums: Mapping | None = None
) -> dict[tuple, Tally]:
    """Per value of ``keys``: rows, finished rows (``done`` set), their seconds
    from ``start`` to ``done`` (total and each), overdue rows, and ``sums``."""
    seconds = elapsed_seconds(timing.start, timing.done)
    sums = dict(sums or {})
    if timing.due is not None:
        sums["_late"] = overdue(timing.due, timing.done, timing.now)
    key_names = [f"key{n}" for n in range(len(keys))]
    sum_names = [f"sum{n}" for n in range(len(sums))]
    stmt = (
        select(
            *(key.label(name) for key, name in zip(keys, key_names, strict=True)),
            func.count().label("n"),
            func.count(timing.done).label("done"),
            func.sum(seconds).label("seconds"),
            packed_seconds(seconds).label("durations"),
            *(func.sum(expr).label(name) for expr, name in zip(sums.values(), sum_names, strict=True)),
        )
        .select_from(source)
        .where(*where)
        .group_by(*keys)
    )
    out = {}
    for row in session.execute(stmt).mappings():
        tally = Tally(n=row["n"], done=row["done"], seconds=as_int(row["seconds"]), chunks=[unpack(row["durations"])])
        tally.sums = {name: as_int(row[column]) for name, column in zip(sums, sum_names, strict=True)}
        tally.late = tally.sums.pop("_late", 0)
        out[tuple(row[name] for name in key_names)] = tally
    return out
