"""Synthetic legacy data: the six tables of MAPPING.md section 1, at any scale.

Invariant: the data is a pure function of (random_seed, scale, anchor day).
Every generic value is drawn on the server from sha512(seed/table/id) by the
scripts in `sql/seed/`; every edge case of MAPPING.md section 3 is also written
into a fixed row at a low id, so that it is present at any scale. The whole
seed is one transaction: it lands completely or not at all.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from importlib import resources
from typing import Any

import sqlalchemy as sa
from psycopg2.extras import Json
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

TABLES = ("offices", "doctors", "patients", "orders", "jaws", "system_messages")

#: Rows at scale 1.0 (about 3.5 million in all); counts scale linearly.
BASE_COUNTS: Mapping[str, int] = {
    "offices": 5_000,
    "doctors": 50_000,
    "patients": 1_500_000,
    "orders": 1_900_000,
    "jaws": 20_000,
    "system_messages": 50_000,
}

#: Share of rows in the tie group (all with updated_at == TIE). In patients and
#: orders it is above 10 000 rows at scale 1.0, so it spans any batch size.
TIE_SHARE: Mapping[str, float] = {
    "offices": 0.02,
    "doctors": 0.02,
    "patients": 0.007,
    "orders": 0.007,
    "jaws": 0.02,
    "system_messages": 0.02,
}

T0 = datetime(2018, 1, 1, tzinfo=timezone.utc)  # first created_at
TIE = datetime(2023, 6, 15, 12, 0, tzinfo=timezone.utc)  # the shared updated_at of the tie group
_BASELINE = datetime(2021, 3, 1, tzinfo=timezone.utc)  # timestamps of the fixed rows (base + id days)

_FIRST_NAMES = [
    "Anna", "Ben", "Carla", "David", "Emma", "Felix", "Grace", "Hugo", "Ines", "Jonas", "Kim", "Liam",
    "Maria", "Noah", "Olivia", "Paul", "Quinn", "Rosa", "Sam", "Tara", "José", "Zoë", "Søren", "Anaïs",
    "Björn", "Łukasz", "美咲", "Ahmed", "Priya", "Chloé", "Nguyễn", "Dmitrij",
]
_LAST_NAMES = [
    "Smith", "Johnson", "Garcia", "Miller", "Brown", "Davis", "Martinez", "Wilson", "Anderson", "Taylor",
    "Müller", "Schmidt", "Núñez", "O'Brien", "Dubois", "Rossi", "Kowalski", "Nakamura", "田中", "Hansen",
    "Van der Berg", "Ødegaard", "Çelik", "Ivanova", "Lee", "Kim", "Patel", "da Silva",
]
_NOTES = [
    "Prefers morning appointments.", "Allergic to latex.", "Habla español — prefiere citas por la tarde.",
    "Patient wünscht Rückruf.", "日本語のメモ：次回は三ヶ月後", "Great progress 😀🦷", "Refinement planned",
    "Missed two appointments; call before booking.", "Paiement reçu ✓", "Wears retainer at night only.",
]
_FDI = [str(t) for q in (10, 20, 30, 40) for t in range(q + 1, q + 9)] + [
    str(t) for q in (50, 60, 70, 80) for t in range(q + 1, q + 6)
]

_ANALYZE = ("ANALYZE public.offices, public.doctors, public.patients, public.orders, public.jaws, "
            "public.system_messages")
_TRUNCATE = ("TRUNCATE public.offices, public.doctors, public.patients, public.orders, public.jaws, "
             "public.system_messages RESTART IDENTITY CASCADE")


class SeedRefused(RuntimeError):
    """The target database already holds legacy rows and force was not given."""


def planned_counts(scale: float) -> dict[str, int]:
    """Rows per table for `scale`: linear, but never fewer than the fixed edge-case rows need."""
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    return {t: max(_MIN_ROWS[t], round(BASE_COUNTS[t] * scale)) for t in TABLES}


def seed_legacy(
    url: str,
    *,
    scale: float,
    random_seed: int = 42,
    collisions: bool = False,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    anchor: datetime | None = None,
) -> dict[str, int]:
    """Create the legacy schema at `url` if missing and fill it; returns rows per table.

    `anchor` is "now" for the data (default: the start of the current UTC day):
    created_at runs from 2018-01-01 to it, a few updated_at lie days after it.
    Refuses (SeedRefused) when a legacy table has rows, unless `force`, which
    truncates the six tables first. `collisions` adds order_no pairs that map
    to the same order_number (they stop the orders entity by design).
    """
    counts = planned_counts(scale)
    say = progress or (lambda _message: None)
    t1 = _day_start(anchor or datetime.now(timezone.utc))
    engine = sa.create_engine(_psycopg2_url(url), poolclass=NullPool)
    started = time.monotonic()
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(_sql("legacy_schema.sql"))
        with engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
            _refuse_or_truncate(conn, force=force, say=say)
            conn.exec_driver_sql(_sql("seed/prelude.sql"))
            conn.exec_driver_sql(_sql("seed/defer_indexes.sql"))
            for table in TABLES:
                step = time.monotonic()
                rows = conn.execute(sa.text(_sql(f"seed/{table}.sql")),
                                    _generic_params(table, counts, random_seed=random_seed, t1=t1)).rowcount
                say(f"seed: {table}: {rows:,} rows in {time.monotonic() - step:.1f} s")
            step = time.monotonic()
            edges = _edge_rows(counts, t1, collisions=collisions)
            conn.execute(sa.text(_sql("seed/baseline.sql")), {
                "base": _BASELINE, "far_order_id": counts["orders"],
                **{f"k_{t}": k for t, k in _LAST_FIXED_ID.items()},
            })
            for table, fixed in edges.items():
                _write_rows(conn, table, fixed)
            conn.exec_driver_sql(_sql("seed/finish.sql"))
            say(f"seed: {sum(len(fixed) for fixed in edges.values())} edge-case rows and sequences "
                f"in {time.monotonic() - step:.1f} s")
            step = time.monotonic()
            conn.exec_driver_sql(_sql("seed/restore_indexes.sql"))
            say(f"seed: indexes and foreign keys rebuilt in {time.monotonic() - step:.1f} s")
            step = time.monotonic()
            conn.exec_driver_sql(_ANALYZE)
            say(f"seed: analyze in {time.monotonic() - step:.1f} s")
    finally:
        engine.dispose()
    say(f"seed: {sum(counts.values()):,} rows in {time.monotonic() - started:.1f} s")
    return counts


def _generic_params(table: str, counts: Mapping[str, int], *, random_seed: int, t1: datetime) -> dict[str, Any]:
    """Bound parameters of the script `sql/seed/<table>.sql`."""
    return {
        "seed": str(random_seed), "t0": T0, "t1": t1, "tie": TIE, "tie_share": TIE_SHARE[table], "n": counts[table],
        "first_names": _FIRST_NAMES, "last_names": _LAST_NAMES, "notes": _NOTES, "fdi": _FDI,
        **{f"n_{t}": n for t, n in counts.items()},
    }


def _refuse_or_truncate(conn: Connection, *, force: bool, say: Callable[[str], None]) -> None:
    filled = [t for t in TABLES
              if conn.execute(sa.select(sa.exists().select_from(sa.table(t, schema="public")))).scalar()]
    if not filled:
        return
    database = conn.execute(sa.select(sa.func.current_database())).scalar()
    if not force:
        raise SeedRefused(
            f"database {database!r} already has legacy rows (in {', '.join(filled)}); "
            "pass force=True (dbmig seed --force) to truncate the six legacy tables and seed again"
        )
    conn.exec_driver_sql(_TRUNCATE)
    say(f"seed: truncated the legacy tables of {database!r}")


def _write_rows(conn: Connection, table: str, rows: Mapping[int, Mapping[str, Any]]) -> None:
    columns = sorted({c for values in rows.values() for c in values} | {"id"})
    target = sa.table(table, *(sa.column(c) for c in columns), schema="public")
    for row_id, values in rows.items():
        conn.execute(sa.update(target).where(target.c.id == row_id).values(**values))


def _sql(name: str) -> str:
    return resources.files("dbmig_pipeline").joinpath("sql", *name.split("/")).read_text(encoding="utf-8")


def _psycopg2_url(url: str) -> sa.URL:
    # The fixed rows bind psycopg2's Json; any postgres URL form is accepted.
    return sa.make_url(url).set(drivername="postgresql+psycopg2")


def _day_start(moment: datetime) -> datetime:
    moment = moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _edge_rows(counts: Mapping[str, int], now: datetime, *, collisions: bool) -> dict[str, dict[int, dict[str, Any]]]:
    """The fixed edge-case rows: table -> id -> columns to write over the baseline row.

    Each row shows one case of MAPPING.md section 3 that makes it rejected, if
    any, plus cases that are only messy (padding, case, formats). Ids are
    contiguous from 2; id 1 stays a clean row and is the default parent.
    """

    def base(row_id: int) -> datetime:
        return _BASELINE + timedelta(days=row_id)

    def tie() -> dict[str, Any]:
        return {"updated_at": TIE}

    def old(row_id: int) -> dict[str, Any]:  # before the first partition (2020-01-01)
        return {"created_at": datetime(2018, 5, 1, tzinfo=timezone.utc) + timedelta(hours=row_id),
                "updated_at": datetime(2019, 6, 1, tzinfo=timezone.utc) + timedelta(hours=row_id)}

    def future(row_id: int) -> dict[str, Any]:
        return {"updated_at": now + timedelta(days=3, minutes=row_id)}

    large = "Große Notiz — 大きなメモ 🦷 " + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 1800
    pair_a = ("ab-100", " AB-100") if collisions else ("ab-100", " AB-101")
    pair_b = ("Cd-200\t", "CD-200") if collisions else ("Cd-200\t", "CD-201")
    order_edges: dict[int, dict[str, Any]] = {
        2: {"patient_id": 10},  # patient 10 has status 7: quarantined, so this order misses its parent
        3: {"patient_id": 9},  # status 4: quarantined too
        4: {"patient_id": 3},  # patient of a quarantined doctor
        5: {"patient_id": 2},  # patient of a doctor whose office is quarantined
        6: {"status": "draft", "submitted_at": None},
        7: {"status": "submitted"},
        8: {"status": "in_production"},
        9: {"status": "shipped", "shipped_at": base(9) + timedelta(days=5)},
        10: {"status": "delivered", "shipped_at": base(10) + timedelta(days=5)},
        11: {"status": "cancelled"},
        12: {"status": "Shipped"},
        13: {"status": "unknown"},
        14: {"status": " shipped "},
        15: {"aligner_count": None},
        16: {"aligner_count": -3},
        17: {"price": Decimal("-10.00")},
        18: {"price": Decimal("1234.56")},
        19: {"price": Decimal("0.01")},
        20: {"currency": "CAD"},
        21: {"details": Json({"arches": "upper", "rush": False})},
        22: {"details": Json({"arches": "lower", "rush": False})},
        23: {"details": Json({"arches": "both", "rush": True})},
        24: {"details": Json({"rush": False})},
        25: {"details": Json({"arches": None, "rush": False})},
        26: {"details": Json({"arches": "", "rush": False})},
        27: {"details": Json({"arches": "top", "rush": False})},
        28: {"details": Json({"arches": " upper ", "rush": False})},
        29: {"details": Json({"arches": "both", "rush": True})},
        30: {"details": Json({"arches": "both", "rush": False})},
        31: {"details": Json({"arches": "both", "rush": "true"})},
        32: {"details": Json({"arches": "lower"})},
        33: {"details": Json({"arches": "both", "rush": True, "material": "ClearX", "notes": "Größe ✓ 😀",
                              "refinement": {"round": 2, "teeth": [11, 21]}})},
        34: {"details": Json({})},
        35: {"submitted_at": None, "shipped_at": None},
        36: {"status": "delivered", "submitted_at": base(36), "shipped_at": base(36) + timedelta(days=9)},
        37: {"order_no": "\n ord-000000037 \r"},
        38: tie(), 39: tie(), 40: tie(),
        41: old(41),
        42: future(42),
        43: {"order_no": pair_a[0]},
        44: {"order_no": pair_a[1]},
        45: {"order_no": pair_b[0]},
    }
    # The partner of pair_b is the last order: the two lie in different batches.
    order_edges[counts["orders"]] = {"order_no": pair_b[1]}
    return {
        "offices": {
            2: {"name": "  Bright Smiles  ", "phone": "(555) 123-4567", "email": "Info@BrightSmiles.COM", **tie()},
            3: {"name": "\tTab Dental\t", "phone": "555.123.4567", "email": "  front@tabdental.com ", **tie()},
            4: {"name": "\nNewline Ortho\n", "phone": "+1 555 123 4567", "email": "", **tie()},
            5: {"name": "\rCarriage Clinic\r\n", "phone": "", "email": "no-email-here"},
            6: {"name": "\fFormfeed Dental\v", "phone": "call front desk", "email": "a@b@example.com",
                "address2": "", "city": " Boston", "state": " CO "},
            7: {"name": "\vVT Smiles ", "phone": "1-555-123-4567", "email": None},
            8: {"name": "Ünïcödé Dental 歯科 🦷", "phone": "555-1234", "email": "ok@example.com", **old(8)},
            9: {"name": "Future Dental", "phone": None, **future(9)},
            10: {"name": " \t\n "},  # blank after trimming: quarantined, its doctors miss their parent
        },
        "doctors": {
            2: {"office_id": 10},
            3: {"specialty": "GP", "first_name": " Anna ", "last_name": "Smith\t"},
            4: {"specialty": "PEDO", "first_name": "\nLi", "last_name": "Wei\r"},
            5: {"specialty": "OTHER", "first_name": "\fMarta", "last_name": "Lopez\v"},
            6: {"specialty": "ortho"},
            7: {"specialty": "Gp"},
            8: {"specialty": " PEDO "},
            9: {"specialty": "DDS"},
            10: {"specialty": "endo", "office_id": 2},
            11: {"first_name": "\t\n"},  # blank: quarantined
            12: {"phone": "+44 20 7946 0958", "email": "Dr.Who@Example.com "},
            13: {"first_name": "José", "last_name": "Núñez-Østergaard", "phone": "5551234567"},
            14: tie(), 15: tie(), 16: tie(),
            17: old(17),
            18: future(18),
            19: {"license_no": "  LIC-0019  "},
            20: {"license_no": None},
            21: {"specialty": ""},
            **_contact_cases(22),
        },
        "patients": {
            2: {"doctor_id": 2},  # doctor whose office is quarantined
            3: {"doctor_id": 11},  # quarantined doctor
            4: {"status": 0, "first_name": "\nLena", "last_name": "Fox\f"},
            5: {"status": 1}, 6: {"status": 2}, 7: {"status": 3}, 8: {"status": 9},
            9: {"status": 4}, 10: {"status": 7}, 11: {"status": -1},
            12: {"birth_date": date(1900, 1, 1)},
            13: {"birth_date": date(2022, 1, 1)},  # after created_at (2021-03-14)
            14: {"birth_date": None},
            15: {"gender": "M"}, 16: {"gender": "F"}, 17: {"gender": "U"}, 18: {"gender": None},
            19: {"gender": "m"}, 20: {"gender": "f"}, 21: {"gender": "X"},
            22: {"first_name": " \t"},  # blank: quarantined
            # U+00A0 no-break space: str.strip() removes it too
            23: {"first_name": "\rÉmilie\v", "last_name": "\u00a0Müller\u00a0"},
            24: {"notes": large},
            25: {"notes": large + large},
            26: {"notes": "\n" + large + " 😀\t"},
            27: {"notes": "Allergic to latex — 日本語 メモ 😀🦷 Ñandú"},
            28: {"notes": " \t\n "},
            29: {"notes": "  padded note\n"},
            30: tie(), 31: tie(), 32: tie(),
            33: old(33),
            34: future(34),
            35: {"email": "Mixed.Case@Example.COM", "phone": "+1 555 123 4567"},
            36: {"email": "a@b@example.com", "phone": "555.123.4567"},
            37: {"email": "junk", "phone": "12345"},
            38: {"email": " spaced@example.com\t", "phone": "15551234567"},
            39: {"email": "", "phone": "25551234567"},
            **_contact_cases(40),
        },
        "orders": order_edges,
        "jaws": {
            2: {"arch": "U"}, 3: {"arch": "L"}, 4: {"arch": "X"}, 5: {"arch": "u"},
            6: {"teeth": "11,12,21"},
            7: {"teeth": " 11, 12 ,21 "},
            8: {"teeth": "21,11,21,11"},
            9: {"teeth": "11,,12,"},
            10: {"teeth": None},
            11: {"teeth": ""},
            12: {"teeth": "19"},
            13: {"teeth": "11,ab"},
            14: {"teeth": "60"},
            15: {"teeth": " , "},
            16: {"teeth": "85,51,55,48,18"},
            17: {"patient_ref": None},
            18: {"patient_ref": counts["patients"] + 1000},
            19: {"patient_ref": 4},
            20: {"patient_ref": 10},
            21: {"scan_url": " https://scans.example.com/jaws/21.stl\n"},
            22: {"scan_url": None},
            23: tie(), 24: tie(), 25: tie(),
            26: old(26),
            27: future(27),
        },
        "system_messages": {
            2: {"severity": "info"}, 3: {"severity": "warn"}, 4: {"severity": "error"},
            5: {"severity": "INFO"}, 6: {"severity": "Warn"}, 7: {"severity": " error "},
            8: {"severity": "debug"}, 9: {"severity": "fatal"},
            10: {"context": None},
            11: {"context": Json(None)},
            12: {"context": Json({"order_id": 7, "nested": {"a": [1, 2]}})},
            13: {"updated_at": None}, 14: {"updated_at": None}, 15: {"updated_at": None},
            16: {"body": "\t Body with tabs and newlines \n"},
            17: {"body": "\fÜbertragung fehlgeschlagen — 失败 ❌\v"},
            18: {"code": "\r PAD_CODE \n"},
            19: {"body": " \n\t"},  # blank: quarantined
            20: tie(), 21: tie(), 22: tie(),
            23: old(23),
            24: future(24),
        },
    }


def _contact_cases(first_id: int) -> dict[int, dict[str, Any]]:
    """Rows first_id.. with every kind of phone and e-mail MAPPING.md names (warnings, never rejects)."""
    phones = ["(555) 123-4567", "555.123.4567", "+1 555 123 4567", "", "call front desk", "1-555-123-4567",
              "555-1234", None]
    emails = ["Mixed.Case@Example.COM", "  spaced@example.com\t", "", "no-at-sign.example.com", "a@b@example.com",
              None, "plain@example.com", "UPPER@EXAMPLE.COM"]
    return {first_id + k: {"phone": phone, "email": email} for k, (phone, email) in enumerate(zip(phones, emails))}


def _last_fixed_ids() -> dict[str, int]:
    # counts of 0 put the "last order" row at id 0, out of the way
    edges = _edge_rows(dict.fromkeys(TABLES, 0), T0, collisions=False)
    return {t: max(i for i in rows if i > 0) for t, rows in edges.items()}


_LAST_FIXED_ID = _last_fixed_ids()
#: The last order carries a fixed case too, so orders needs one row more.
_MIN_ROWS = {**_LAST_FIXED_ID, "orders": _LAST_FIXED_ID["orders"] + 1}
