"""The demo world (demo and tests only): agencies and accounts (`demo`), the
query sources and forms over the seed data (`queries`), the transfer items
and staff certificates of the demo PKI (`transfer`). `flask seed demo` runs
them all; each is idempotent."""

from app.services.seed.demo import seed_agencies, seed_demo
from app.services.seed.queries import seed_query_world
from app.services.seed.transfer import seed_transfer

__all__ = ["seed_agencies", "seed_demo", "seed_query_world", "seed_transfer"]
