"""A logging filter that keeps personal data out of every log line.

Libraries (FAB, SQLAlchemy) log usernames, SQL parameters and exception texts;
this filter masks Taiwanese ID numbers, resident certificate numbers and
e-mail addresses in the rendered message and drops SQL parameter dumps.
With LOG_FORMAT=json, each line is one JSON object (``JsonFormatter``) for a
log collector: time, level, logger, process and the message, masked the same way.
"""

import datetime
import json
import logging
import re

_PATTERNS = [
    (re.compile(r"\b[A-Z][A-Z0-9]\d{8}\b"), "[ID]"),
    (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), "[EMAIL]"),
    (re.compile(r"\[parameters: .*?\]", re.S), "[parameters hidden]"),
]


def scrub(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class PersonalDataFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the record as is
            return True
        if record.exc_info:
            # Exception texts may quote row values; keep the type, not the text.
            exc_type = record.exc_info[0]
            message = f"{message} ({exc_type.__name__ if exc_type else 'error'})"
            record.exc_info = None
            record.exc_text = None
        record.msg = scrub(message)
        record.args = ()
        return True


_installed = False


def install_personal_data_filter() -> None:
    """Scrub every log record when it is made, whichever handler prints it
    (ours, gunicorn's, a test runner's)."""
    global _installed
    if _installed:
        return
    _installed = True
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO)
    previous = logging.getLogRecordFactory()
    flt = PersonalDataFilter()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        flt.filter(record)
        return record

    logging.setLogRecordFactory(factory)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, process, message (masked),
    and the exception's type when there was one (never its text)."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": scrub(message),
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=False)


def install_log_format(log_format: str) -> None:
    """LOG_FORMAT: "text" leaves the handlers as they are; "json" gives every
    handler of the root logger ``JsonFormatter``."""
    log_format = (log_format or "text").strip().lower()
    if log_format not in ("text", "json"):
        raise ValueError(f"LOG_FORMAT: {log_format!r} is neither text nor json")
    if log_format == "text":
        return
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO)
    for handler in root.handlers:
        if not isinstance(handler.formatter, JsonFormatter):
            handler.setFormatter(JsonFormatter())
