"""Case search at county scale on PostgreSQL.

Generates, in a scratch database it creates and drops, 1,000,000 notification
cases over two years with their dispatches (the same world as
``report_bench.py``: INSERT ... SELECT generate_series), gives each case a
citizen (keyed hashes of ID number and name, about three cases per citizen;
one demo citizen has a handful), then times the search service, p50 / p95 of
``--runs`` calls each (target p50 < 100 ms):

  * by citizen ID number, by name, by case number (the land office's supervisor);
  * by category + case status + one month (supervisor), a dispatch state + one
    quarter (handler), overdue (supervisor and notifier);
  * every agency by category + one year, and the newest cases (the manager);
  * one whole rendered search page;

and, in the same run, the baseline: the first page of the supervisor's work
list (``report_bench``'s target p50 < 50 ms), each search's ratio to it.

    .venv/bin/python bench/search_bench.py [--cases 1000000] [--runs 30] [--keep]
    .venv/bin/python bench/search_bench.py --reuse NAME       # re-time a kept database
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.query_bench import PG_ADMIN, _drop, _pg_db  # noqa: E402
from bench.report_bench import GENERATE, SPAN_DAYS, START, _app, fill, prepare, samples  # noqa: E402

DEMO_ID, DEMO_NAME = "A123456789", "王小明"
# (name, statement): the citizens' keyed hashes. Made-up hex for the many (the search only
# compares them); the demo citizen's real hashes (bound) on a handful of cases across the years.
CITIZENS = [
    (
        "citizens",
        """
        UPDATE notification_case
        SET citizen_id_hash = md5('id' || (id / 3)::text) || md5('i' || (id / 3)::text),
            citizen_name_hash = md5('nm' || (id / 3)::text) || md5('n' || (id / 3)::text)
        WHERE case_no LIKE 'B%'""",
    ),
    (
        "demo citizen",
        """
        UPDATE notification_case SET citizen_id_hash = :id_hash, citizen_name_hash = :name_hash
        WHERE case_no LIKE 'B%' AND id % 150000 = 7""",
    ),
]


def generate(app, cases: int) -> None:
    from app.services.notify.registration import id_hash, name_hash

    wanted = {"clerks", "cases", "dispatches"}
    params = {"start": START, "span": SPAN_DAYS * 86400, "n": cases}
    with app.app_context():
        params.update(id_hash=id_hash(DEMO_ID), name_hash=name_hash(DEMO_NAME))
    fill(app, [(n, s) for n, s in GENERATE if n in wanted] + CITIZENS, params)


def _time(fn, runs: int) -> tuple[float, float]:
    taken = samples(fn, runs)
    return statistics.median(taken), taken[min(len(taken) - 1, round(0.95 * (len(taken) - 1)))]


def time_searches(app, runs: int) -> None:
    from sqlalchemy import select

    from app.extensions import db
    from app.models.notify import Dispatch, NotificationCase, NotificationCategory
    from app.models.org import Agency, PlatformUser
    from app.services import actors, notify

    end = (START + datetime.timedelta(days=SPAN_DAYS - 1)).date()
    month, quarter, year = (end - datetime.timedelta(days=d) for d in (30, 90, 365))
    with app.app_context():

        def actor(username):
            user = db.session.scalar(select(PlatformUser).where(PlatformUser.username == username))
            return actors.for_user(user, session=db.session)

        sup, han, notifier, manager = (actor(u) for u in ("supervisor.land", "handler.land", "notifier", "manager"))
        address = db.session.scalar(select(NotificationCategory.id).where(NotificationCategory.sub_item == "地址變更"))
        land = db.session.scalar(select(Agency.id).where(Agency.code == "LAND"))
        number = db.session.scalar(
            select(NotificationCase.case_no)
            .join(Dispatch, Dispatch.case_id == NotificationCase.id)
            .where(Dispatch.agency_id == land, NotificationCase.id % 1000 == 3)
            .limit(1)
        )
        total = db.session.scalar(select(NotificationCase.id).order_by(NotificationCase.id.desc()).limit(1))
        C = notify.Criteria
        searches = [
            ("by ID number (supervisor)", sup, C(id_no=DEMO_ID)),
            ("by name (supervisor)", sup, C(name=DEMO_NAME)),
            ("by case number (supervisor)", sup, C(case_no=number)),
            ("category+status+month (sup.)", sup, C(category=address, status="completed", date_from=month)),
            ("state+quarter (handler)", han, C(state="closed", date_from=quarter, date_to=end)),
            ("overdue (supervisor)", sup, C(overdue=True)),
            ("overdue (notifier)", notifier, C(overdue=True)),
            ("category+year (manager)", manager, C(category=address, date_from=year)),
            ("newest, no criteria (manager)", manager, C()),
            ("page 20 of a month (sup.)", sup, C(date_from=month, page=20)),
        ]
        baseline, base_p95 = _time(
            lambda: (notify.worklist(db.session, sup, "incoming"), db.session.expire_all()), runs
        )
        print(f"\ncase search over {total:,} cases (p50 / p95 of {runs} runs, ms; target p50 < 100)")
        print(f"  {'baseline: work list, first page (sup.)':40s} {baseline:7.1f} / {base_p95:7.1f}   1.0x")
        for label, who, criteria in searches:
            n = notify.search_cases(db.session, who, criteria).count
            p50, p95 = _time(
                lambda who=who, c=criteria: (notify.search_cases(db.session, who, c), db.session.expire_all()), runs
            )
            print(f"  {label:30s} {n:3d} rows {p50:7.1f} / {p95:7.1f}  {p50 / baseline:4.1f}x", flush=True)
    client = app.test_client()
    client.post(
        "/login/", data={"username": "supervisor.land", "password": os.environ.get("DEMO_PASSWORD", "Demo-2026")}
    )
    p50, p95 = _time(lambda: client.post("/notify/search/", data={"id_no": DEMO_ID}), runs)
    print(f"  {'whole page, by ID number (sup.)':40s} {p50:7.1f} / {p95:7.1f}  {p50 / baseline:4.1f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (prints its name)")
    parser.add_argument("--reuse", metavar="NAME", help="time an existing scratch database (made with --keep)")
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    from sqlalchemy.engine import make_url

    name = args.reuse or f"bench_search_{uuid.uuid4().hex[:8]}"
    url = make_url(PG_ADMIN).set(database=name) if args.reuse else _pg_db(name)
    try:
        app = _app(url.render_as_string(hide_password=False))
        prepare(app, seed=not args.reuse)
        if not args.reuse:
            print(f"PostgreSQL scratch database {name}: generating {args.cases:,} cases", flush=True)
            t0 = time.perf_counter()
            generate(app, args.cases)
            print(f"  generated in {time.perf_counter() - t0:.0f} s")
        time_searches(app, args.runs)
    finally:
        if args.keep or args.reuse:
            print(f"kept {name}")
        else:
            _drop(name)


if __name__ == "__main__":
    main()
