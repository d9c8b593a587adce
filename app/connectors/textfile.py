"""Text-file sources: CSV, TSV and fixed-width files, UTF-8 or Big5/cp950.

Source settings: ``path`` is the file; ``options``::

    format        "csv" (default) | "tsv" | "fixed"
    encoding      "utf-8" (default, a BOM is accepted) | "cp950" | "big5"
                  (Big5 is read as cp950, its Microsoft superset used by
                  Taiwanese government systems)
    delimiter     CSV only (default ",")
    header        CSV/TSV: the first line names the columns (default true);
                  when false, "names" lists them
    names         column names when there is no header line
    layout        fixed only: [{"name", "start", "width"}], start 0-based
    width_unit    fixed only: "char" (default) or "byte" (positions counted in
                  encoded bytes, as Big5 mainframe extracts often are)
    skip_rows     fixed only: lines to skip at the top (default 0)
    key_columns   columns to index: an ``eq`` filter on one is a dict lookup

Every value is read as text (no type guessing, empty stays ""). The file is
loaded once and reloaded when its modification time, size or inode changes
(one ``stat`` per fetch). A file that disappears is reported as not found:
a copy loaded before is never served in its place. The section's ``target``
is not used (one source, one file).

Operators: eq, ne, in compare text; lt/le/gt/ge compare numbers when the
input is a number (rows whose value is not a number do not match), else text;
like = contains, prefix = starts with, both literal.
"""

from __future__ import annotations

import codecs
import os
import threading
import time
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from app.connectors.base import (
    Connector,
    Entity,
    Field,
    Result,
    SectionSpec,
    SettingsSchema,
    SourceConfig,
    SourceError,
    refusal,
    register,
    text,
)
from app.lib.confinement import Refused

ENCODINGS = {"utf-8": "utf-8-sig", "utf8": "utf-8-sig", "cp950": "cp950", "big5": "cp950", "ms950": "cp950"}
FORMATS = ("csv", "tsv", "fixed")


def _known_encoding(value: str) -> bool:
    try:
        codecs.lookup(ENCODINGS.get(value.lower(), value))
    except LookupError:
        raise ValidationError(str(_l("Unknown text encoding."))) from None
    return True


class LayoutEntry(Schema):
    class Meta:
        unknown = RAISE

    name = text(100, required=True)
    start = fields.Integer(strict=True, required=True, validate=validate.Range(min=0, max=100_000))
    width = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=100_000))


class TextFileOptions(Schema):
    class Meta:
        unknown = RAISE

    format = fields.String(validate=validate.OneOf(FORMATS), load_default="csv")
    encoding = text(40, validate_also=_known_encoding, load_default="utf-8")
    delimiter = fields.String(validate=validate.Length(min=1, max=5), load_default=",")
    header = fields.Boolean(truthy={True}, falsy={False}, load_default=True)
    names = fields.List(text(100), validate=validate.Length(max=1000), load_default=list)
    layout = fields.List(fields.Nested(LayoutEntry), validate=validate.Length(max=1000), load_default=list)
    width_unit = fields.String(validate=validate.OneOf(("char", "byte")), load_default="char")
    skip_rows = fields.Integer(strict=True, validate=validate.Range(min=0, max=1_000_000), load_default=0)
    key_columns = fields.List(text(100), validate=validate.Length(max=20), load_default=list)

    @validates_schema
    def layout_and_names(self, data, **kwargs):
        if data.get("format") == "fixed" and not data.get("layout"):
            raise ValidationError(
                _l("A fixed-width file needs a layout (name, start, width of each column)."), "layout"
            )
        if data.get("header") is False and not data.get("names"):
            raise ValidationError(_l("A file without a header line needs the column names."), "names")


class TextFileSettings(SettingsSchema):
    path = text(500, required=True, error_messages={"required": _l("Text-file sources need a file path.")})
    options = fields.Nested(TextFileOptions, load_default=dict)


def _pandas():
    try:
        import pandas
    except ImportError:
        raise SourceError(_l("pandas is not installed (pip install pandas)"), "driver") from None
    return pandas


@dataclass
class _Loaded:
    stamp: tuple
    frame: object  # pandas.DataFrame, every column str
    index: dict  # key column -> {value: ndarray of row positions}
    loaded_at: float


@register("textfile")
class TextFileConnector(Connector):
    label = _l("Text file")
    order = 20
    settings_schema = TextFileSettings

    def __init__(self, source: SourceConfig):
        super().__init__(source)  # the options loaded and checked by TextFileOptions
        opts = self.options
        self.format = opts["format"]
        enc = opts["encoding"].lower()
        self.encoding = ENCODINGS.get(enc) or codecs.lookup(enc).name
        self.delimiter = "\t" if self.format == "tsv" else opts["delimiter"]
        self.header = opts["header"]
        self.names = opts["names"]
        self.layout = opts["layout"]
        self.width_unit = opts["width_unit"]
        self.skip_rows = opts["skip_rows"]
        self.key_columns = opts["key_columns"]
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    @classmethod
    def confine(cls, source: SourceConfig) -> None:
        if source.confinement is not None:
            source.confinement.check_file(cls.settings_of(source)["path"])

    @property
    def path(self) -> str:
        """The file as configured (what messages name)."""
        return self.settings["path"]

    def file(self) -> str:
        """The file to open: resolved and inside the confinement, checked on every open."""
        path = self.path
        if self.source.confinement is None:
            return path
        try:
            return self.source.confinement.check_file(path)
        except Refused as exc:
            self._loaded = None  # never serve a copy loaded before
            raise refusal(exc, self.source) from None

    # -- reading -----------------------------------------------------------------

    def _stat(self) -> tuple:
        file = self.file()
        try:
            st = os.stat(file)
        except FileNotFoundError:
            had = self._loaded is not None
            self._loaded = None  # never serve the old copy
            if had:
                message = _l("file not found: %(path)s (it was there before and has disappeared)", path=self.path)
            else:
                message = _l("file not found: %(path)s", path=self.path)
            raise SourceError(message, "not_found") from None
        except PermissionError:
            raise SourceError(_l("no permission to read %(path)s", path=self.path), "refused") from None
        except OSError as exc:
            problem = exc.strerror or type(exc).__name__
            raise SourceError(
                _l("cannot read %(path)s (%(problem)s)", path=self.path, problem=problem), "unreachable"
            ) from None
        if not os.path.isfile(file):
            raise SourceError(_l("not a file: %(path)s", path=self.path), "config")
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read_frame(self, nrows: int | None = None):
        pd = _pandas()
        try:
            if self.format in ("csv", "tsv"):
                kwargs = {}
                if not self.header:
                    if not self.names:
                        raise SourceError(_l("a file without a header line needs options.names"), "config")
                    kwargs = {"header": None, "names": self.names}
                return pd.read_csv(
                    self.file(),
                    sep=self.delimiter,
                    encoding=self.encoding,
                    dtype=str,
                    keep_default_na=False,
                    na_filter=False,
                    nrows=nrows,
                    **kwargs,
                )
            names = [str(item["name"]) for item in self.layout]
            if self.width_unit == "byte":
                return self._read_fixed_bytes(names, nrows)
            colspecs = [(int(i["start"]), int(i["start"]) + int(i["width"])) for i in self.layout]
            return pd.read_fwf(
                self.file(),
                colspecs=colspecs,
                names=names,
                header=None,
                encoding=self.encoding,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                skiprows=self.skip_rows,
                nrows=nrows,
            )
        except SourceError:
            raise
        except UnicodeDecodeError:
            raise self._undecodable() from None
        except FileNotFoundError:
            raise SourceError(_l("file not found: %(path)s", path=self.path), "not_found") from None
        except PermissionError:
            raise SourceError(_l("no permission to read %(path)s", path=self.path), "refused") from None
        except pd.errors.EmptyDataError:
            raise SourceError(_l("%(path)s is empty", path=self.path), "bad_response") from None
        except (pd.errors.ParserError, ValueError) as exc:
            message = _l(
                "%(path)s cannot be parsed as %(format)s (%(problem)s)",
                path=self.path,
                format=self.format,
                problem=type(exc).__name__,
            )
            raise SourceError(message, "bad_response") from None

    def _undecodable(self) -> SourceError:
        """Where the file stops being text in its character set: the line and the
        column (never the bytes or the value). A Big5 file carries the characters
        Big5 lacks (the rare characters of household registers, 難字) as
        user-defined codes, which no standard cp950 decoder reads."""
        where = self._first_bad_cell()
        if where is None:
            return SourceError(
                _l("%(path)s is not valid %(encoding)s text", path=self.path, encoding=self.encoding), "bad_response"
            )
        line, column = where
        return SourceError(
            _l(
                "%(path)s line %(line)s, column %(column)s holds a character that is not valid %(encoding)s text "
                "(a user-defined or rare character?); correct the file or set the source's character set",
                path=self.path,
                line=line,
                column=column,
                encoding=self.encoding,
            ),
            "bad_response",
        )

    def _first_bad_cell(self) -> tuple[int, str] | None:
        """(1-based line number, column name or number) of the first cell that does not decode."""
        header: list[str] = []
        with open(self.file(), "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                raw = raw.rstrip(b"\r\n")
                try:
                    decoded = raw.decode(self.encoding)
                except UnicodeDecodeError as exc:
                    return number, self._bad_column(raw, exc.start, header)
                if number == 1 and self.format != "fixed" and self.header:
                    header = [c.strip() for c in decoded.split(self.delimiter)]
        return None

    def _bad_column(self, raw: bytes, offset: int, header: list[str]) -> str:
        if self.format == "fixed":
            # the offset in bytes; with width_unit "char" the columns before it are counted in characters
            chars = len(raw[:offset].decode(self.encoding, errors="replace"))
            at = offset if self.width_unit == "byte" else chars
            for item in self.layout:
                if int(item["start"]) <= at < int(item["start"]) + int(item["width"]):
                    return str(item["name"])
            return str(at + 1)
        # Big5 and UTF-8 trail bytes are never the delimiter's ASCII byte
        index = raw[:offset].count(self.delimiter.encode("ascii", errors="ignore") or b",")
        names = header if self.header else [str(n) for n in self.names]
        return names[index] if index < len(names) and names[index] else str(index + 1)

    def _read_fixed_bytes(self, names: list[str], nrows: int | None):
        pd = _pandas()
        spans = [(int(i["start"]), int(i["start"]) + int(i["width"])) for i in self.layout]
        rows = []
        with open(self.file(), "rb") as fh:
            for n, line in enumerate(fh):
                if n < self.skip_rows:
                    continue
                line = line.rstrip(b"\r\n")
                if not line.strip():
                    continue
                rows.append([line[a:b].decode(self.encoding, errors="strict").strip() for a, b in spans])
                if nrows is not None and len(rows) >= nrows:
                    break
        return pd.DataFrame(rows, columns=names, dtype=str)

    def _load(self) -> _Loaded:
        stamp = self._stat()
        current = self._loaded
        if current is not None and current.stamp == stamp:
            return current
        with self._lock:
            current = self._loaded
            if current is not None and current.stamp == stamp:
                return current
            frame = self._read_frame()
            frame.columns = [str(c).strip() for c in frame.columns]
            missing = [c for c in self.key_columns if c not in frame.columns]
            if missing:
                raise SourceError(_l("the file has no key column %(names)s", names=", ".join(missing)), "config")
            index = {c: frame.groupby(c, sort=False).indices for c in self.key_columns}
            # the stamp taken BEFORE reading: a change while reading reloads next time
            self._loaded = _Loaded(stamp=stamp, frame=frame, index=index, loaded_at=time.time())
            return self._loaded

    # -- the contract ------------------------------------------------------------

    def test(self) -> float:
        started = time.perf_counter()
        self._stat()
        if not os.access(self.file(), os.R_OK):
            raise SourceError(_l("no permission to read %(path)s", path=self.path), "refused")
        head = self._read_frame(nrows=1)
        columns = [str(c).strip() for c in head.columns]
        missing = [c for c in self.key_columns if c not in columns]
        if missing:
            raise SourceError(_l("the file has no key column %(names)s", names=", ".join(missing)), "config")
        return time.perf_counter() - started

    def fetch(self, section: SectionSpec, params: dict) -> Result:
        pd = _pandas()
        loaded = self._load()
        frame = loaded.frame
        columns = set(frame.columns)
        for name in (
            [f.column for f in section.filters] + list(section.columns) + [c.lstrip("-") for c in section.order_by]
        ):
            if name not in columns:
                raise SourceError(_l("the file has no column '%(name)s'", name=name), "config")

        filters = [(f, self.filter_value(f, params)) for f in section.filters]
        # an eq filter on an indexed column narrows the rows in O(1)
        positions = None
        rest = []
        for flt, value in filters:
            if positions is None and (flt.op or "eq") == "eq" and flt.column in loaded.index and value is not None:
                positions = loaded.index[flt.column].get(str(value))
                if positions is None:
                    return Result(columns=list(section.columns), rows=[], truncated=False)
            else:
                rest.append((flt, value))
        subset = frame if positions is None else frame.iloc[positions]
        for flt, value in rest:
            subset = subset[self._mask(pd, subset[flt.column], flt.op or "eq", value, flt.column)]
            if subset.empty:
                break
        if section.order_by and not subset.empty:
            by = [c.lstrip("-") for c in section.order_by]
            subset = subset.sort_values(
                by=by, ascending=[not c.startswith("-") for c in section.order_by], kind="stable"
            )
        cap = self.source.row_cap
        truncated = len(subset) > cap
        subset = subset.iloc[:cap]
        out_columns = list(section.columns) or list(frame.columns)
        rows = subset[out_columns].to_dict("records")
        return Result(columns=out_columns, rows=rows, truncated=truncated)

    @staticmethod
    def _mask(pd, series, op: str, value, name: str):
        if op in ("eq", "ne"):
            mask = series == ("" if value is None else str(value))
            return mask if op == "eq" else ~mask
        if op == "in":
            if isinstance(value, str):
                value = value.split(",")
            values = [str(v).strip() for v in (value if isinstance(value, (list, tuple, set)) else [value])]
            return series.isin([v for v in values if v])
        if op in ("like", "prefix"):
            if value is None or value == "":
                raise SourceError(_l("no value for '%(name)s'", name=name), "config")
            if op == "prefix":
                return series.str.startswith(str(value))
            return series.str.contains(str(value), regex=False)
        if op in ("lt", "le", "gt", "ge"):
            if value is None or value == "":
                raise SourceError(_l("no value for '%(name)s'", name=name), "config")
            try:
                number = float(value)
            except (TypeError, ValueError):
                left, right = series, str(value)
            else:
                left, right = pd.to_numeric(series, errors="coerce"), number
            return {"lt": left < right, "le": left <= right, "gt": left > right, "ge": left >= right}[op]
        raise SourceError(_l("unknown operator '%(op)s'", op=op), "config")

    def describe(self) -> list[Entity]:
        """The one file (target ""), its columns from the header line, the
        names or the layout; every value is read as text."""
        self._stat()
        if self.format == "fixed":
            names = [str(item["name"]) for item in self.layout]
        elif not self.header:
            names = [str(n) for n in self.names]
        else:
            names = [str(c).strip() for c in self._read_frame(nrows=0).columns]
        return [
            Entity(
                target="",
                kind="file",
                label=os.path.basename(self.path),
                columns=tuple(Field(name, "text") for name in names),
            )
        ]

    def close(self) -> None:
        self._loaded = None
