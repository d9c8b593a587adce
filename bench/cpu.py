"""CPU seconds used so far by the parts of a bench: a gunicorn server (master
and workers) and the PostgreSQL backends serving named databases, read from
/proc, so a bench can say where each request's CPU went."""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def server_and_database_cpu(server_pid: int, databases: list[str]) -> tuple[float, float]:
    """(CPU seconds of the server and its workers, of the backends of ``databases``).
    A backend that has exited since the last reading takes its CPU with it."""
    web = pg = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if int(entry.name) == server_pid or ppid == server_pid:
            web += proc_cpu(int(entry.name))
        elif cmdline.startswith("postgres:") and any(f" {name} " in cmdline for name in databases):
            pg += proc_cpu(int(entry.name))
    return web, pg
