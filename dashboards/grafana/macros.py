"""Grafana's expansion of a PostgreSQL panel query, as Grafana does it, so tests can run the result. Pure.

Grafana turns a panel's `rawSql` into SQL in three passes, reproduced here in the same order:

1. Template variables (the browser, `templateSrv.replace` with the SQL data sources' `interpolateVariable`):
   `$name`, `${name}`, `[[name]]` and `${name:format}`. A variable that is multi-value or has "All"
   is quoted, each value as a SQL literal ('it''s') joined with commas, ready for `IN (...)`; a
   single-value variable is inserted raw with its quotes doubled. Formats: `sqlstring` (always quoted
   literals), `csv` and `raw` (joined with commas), `singlequote` / `doublequote` (backslash-escaped).
   Built-ins: `$__from` / `$__to` (epoch milliseconds), `$__interval`, `$__interval_ms`. A name that
   is not a variable is left as it is (as Grafana does), which is how `$__timeFilter` reaches pass 3.
2. The SQL engine's global substitutions (`sqleng.Interpolate`): `$__interval_ms`, `$__interval`,
   `$__unixEpochFrom()`, `$__unixEpochTo()`.
3. The PostgreSQL macro engine (`$__name(args)`, arguments split at commas, no nested parentheses):
     $__time(c)              c AS "time"
     $__timeEpoch(c)         extract(epoch from c) as "time"
     $__timeFilter(c)        c BETWEEN '<from>' AND '<to>'         RFC 3339 in UTC, fraction trimmed
     $__timeFrom()           '<from>'
     $__timeTo()             '<to>'
     $__timeGroup(c, '5m')   floor(extract(epoch from c)/300)*300   time_bucket('300.000s',c) with TimescaleDB;
                             followed directly by a comma it gets ` AS "time"` (pre-5.3 compatibility)
     $__timeGroupAlias(c, i) the same + ` AS "time"`
     $__unixEpochFilter(c)   c >= <from s> AND c <= <to s>          (…Nano… in nanoseconds)
     $__unixEpochGroup(c, i) floor((c)/300)*300                      (…Alias + ` AS "time"`)
   An unknown macro or a missing argument is an error, as in Grafana.

Source: Grafana's pkg/tsdb/grafana-postgresql-datasource/macros.go and sqleng/sql_engine.go, and
packages/grafana-sql SqlDatasource.interpolateVariable; the unit tests quote their expected outputs.
Numbers in `$__timeGroup` print as Go's `%v` does (300, 0.02, 1.0368e+06).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# templateSrv's variable pattern: $name | [[name(:format)]] | ${name(.field)(:format)}
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")
_DATE_UNIT = re.compile(r"^(\d+)([dw])$")
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": Decimal("1e-9"), "us": Decimal("1e-6"), "µs": Decimal("1e-6"), "ms": Decimal("0.001"),
             "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600)}
_DAYS = {"d": 1, "w": 7}


class MacroError(ValueError):
    """A macro Grafana would refuse: unknown, missing arguments, or an interval it cannot parse."""


@dataclass(frozen=True, slots=True)
class Variable:
    """The value(s) a dashboard variable holds. `quoted`: the variable is multi-value or has "All",
    so Grafana quotes each value as a SQL literal even when one is selected."""

    values: tuple[str, ...]
    quoted: bool = True


def expand(sql: str, *, time_from: datetime, time_to: datetime, interval: timedelta = timedelta(hours=1),
           variables: Mapping[str, Variable] | None = None, timescaledb: bool = False) -> str:
    """`sql` as Grafana sends it to PostgreSQL for the time range [time_from, time_to]."""
    if time_from.tzinfo is None or time_to.tzinfo is None:
        raise ValueError("the time range must be timezone-aware")
    sql = _replace_variables(sql, variables or {}, time_from, time_to, interval)
    sql = _global_substitutions(sql, time_from, time_to, interval)
    return _replace_macros(sql, time_from, time_to, timescaledb)


def format_interval(interval: timedelta) -> str:
    """Grafana's `$__interval` text (gtime.FormatInterval): the largest whole unit, e.g. 1h, 5m, 30s, 1d."""
    milliseconds = interval // timedelta(milliseconds=1)
    for unit, size in (("y", 365 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if milliseconds >= size:
            return f"{milliseconds // size}{unit}"
    return "1ms"


def parse_interval(text: str) -> Decimal:
    """Seconds of a Grafana interval ('5m', '1h', '2d', '1w', '1h30m', '20ms'; gtime.ParseInterval).

    Months and years depend on the calendar there; they are refused here rather than guessed.
    """
    text = text.strip().strip("'")
    if match := _DATE_UNIT.match(text):
        return Decimal(int(match[1]) * _DAYS[match[2]] * 86_400)
    parts = _GO_DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise MacroError(f"error parsing interval {text}")
    return sum((Decimal(number) * _GO_UNITS[unit] for number, unit in parts), Decimal(0))


def _replace_variables(sql: str, variables: Mapping[str, Variable], time_from: datetime, time_to: datetime,
                       interval: timedelta) -> str:
    builtins = {
        "__from": str(_epoch_ms(time_from)),
        "__to": str(_epoch_ms(time_to)),
        "__interval": format_interval(interval),
        "__interval_ms": str(interval // timedelta(milliseconds=1)),
    }

    def substitute(match: re.Match) -> str:
        name = match[1] or match[2] or match[4]
        if name in builtins:
            return builtins[name]
        if name not in variables:
            return match[0]
        return _format_variable(variables[name], match[3] or match[6])

    return _VARIABLE.sub(substitute, sql)


def _format_variable(variable: Variable, form: str | None) -> str:
    values = variable.values
    if form is None:
        if variable.quoted or len(values) != 1:
            return ",".join(_literal(value) for value in values)
        return values[0].replace("'", "''")
    if form == "sqlstring":
        return ",".join(_literal(value) for value in values)
    if form in ("csv", "raw"):
        return ",".join(values)
    if form == "singlequote":
        return ",".join("'" + value.replace("'", "\\'") + "'" for value in values)
    if form == "doublequote":
        return ",".join('"' + value.replace('"', '\\"') + '"' for value in values)
    raise MacroError(f"unsupported variable format {form!r}")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _global_substitutions(sql: str, time_from: datetime, time_to: datetime, interval: timedelta) -> str:
    sql = sql.replace("$__interval_ms", str(interval // timedelta(milliseconds=1)))
    sql = sql.replace("$__interval", format_interval(interval))
    sql = sql.replace("$__unixEpochFrom()", str(_epoch_s(time_from)))
    return sql.replace("$__unixEpochTo()", str(_epoch_s(time_to)))


def _replace_macros(sql: str, time_from: datetime, time_to: datetime, timescaledb: bool) -> str:
    def substitute(match: re.Match) -> str:
        name = match[1]
        # Pre-5.3 dashboards wrote `$__timeGroup(c, '5m'),` meaning the aliased form; Grafana looks
        # at the character after the macro's first occurrence in the query.
        if name == "__timeGroup":
            at = sql.find(match[0]) + len(match[0])
            if sql[at:at + 1] == ",":
                name = "__timeGroupAlias"
        arguments = [argument.strip(" ") for argument in match[2].split(",")]
        return _macro(name, arguments, time_from, time_to, timescaledb)

    return _MACRO.sub(substitute, sql)


def _macro(name: str, arguments: list[str], time_from: datetime, time_to: datetime, timescaledb: bool) -> str:
    column = arguments[0]
    needs_column = {"__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter", "__unixEpochNanoFilter"}
    if name in needs_column and not column:
        raise MacroError(f"missing time column argument for macro {name}")
    match name:
        case "__time":
            return f'{column} AS "time"'
        case "__timeEpoch":
            return f'extract(epoch from {column}) as "time"'
        case "__timeFilter":
            return f"{column} BETWEEN '{_rfc3339(time_from)}' AND '{_rfc3339(time_to)}'"
        case "__timeFrom":
            return f"'{_rfc3339(time_from)}'"
        case "__timeTo":
            return f"'{_rfc3339(time_to)}'"
        case "__timeGroup":
            seconds = _group_seconds(name, arguments)
            if timescaledb:
                return f"time_bucket('{seconds:.3f}s',{column})"
            return f"floor(extract(epoch from {column})/{_go_float(seconds)})*{_go_float(seconds)}"
        case "__timeGroupAlias":
            return _macro("__timeGroup", arguments, time_from, time_to, timescaledb) + ' AS "time"'
        case "__unixEpochFilter":
            return f"{column} >= {_epoch_s(time_from)} AND {column} <= {_epoch_s(time_to)}"
        case "__unixEpochNanoFilter":
            return f"{column} >= {_epoch_ns(time_from)} AND {column} <= {_epoch_ns(time_to)}"
        case "__unixEpochNanoFrom":
            return str(_epoch_ns(time_from))
        case "__unixEpochNanoTo":
            return str(_epoch_ns(time_to))
        case "__unixEpochGroup":
            seconds = _group_seconds(name, arguments)
            return f"floor(({column})/{_go_float(seconds)})*{_go_float(seconds)}"
        case "__unixEpochGroupAlias":
            return _macro("__unixEpochGroup", arguments, time_from, time_to, timescaledb) + ' AS "time"'
    raise MacroError(f'unknown macro "{name}"')


def _group_seconds(name: str, arguments: Sequence[str]) -> Decimal:
    if len(arguments) < 2:
        raise MacroError(f"macro {name} needs time column and interval and optional fill value")
    return parse_interval(arguments[1])


def _rfc3339(moment: datetime) -> str:
    """Go's time.RFC3339Nano in UTC: 2018-04-12T18:00:00Z, 1960-02-01T07:00:00.5Z."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def _epoch_s(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(seconds=1)  # floor, as Go's Unix() for instants before 1970


def _epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _epoch_ns(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _go_float(value: Decimal) -> str:
    """Go's `%v` of a float64: shortest digits, exponent form from 1e+06 up and below 1e-04."""
    _, digits, exponent = value.normalize().as_tuple()
    magnitude = len(digits) + exponent - 1
    if -4 <= magnitude < 6:
        return format(value.normalize(), "f")
    mantissa = str(digits[0]) + ("." + "".join(map(str, digits[1:])) if len(digits) > 1 else "")
    return f"{mantissa}e{'+' if magnitude >= 0 else '-'}{abs(magnitude):02d}"
