"""One pass of one entity over a contiguous range of partitions.

Invariant: every batch's target rows, ledger hashes, row errors, cursor and
audit row commit in ONE destination transaction, so a crash at any point
loses at most the uncommitted batch and duplicates nothing; a re-run starts
from the saved cursors. A batch whose read or write fails for a technical
reason is rolled back and retried in place on fresh connections
(engine/retrying.py) before the failure reaches the caller.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

import numpy as np
import pandas as pd
import psycopg2.errors
from sqlalchemy.engine import Engine

from dbmig_pipeline.engine import bookkeeping as bk
from dbmig_pipeline.engine import exact_times
from dbmig_pipeline.engine.allocator import fix_mmap_threshold
from dbmig_pipeline.engine.commit_fate import CommitFate
from dbmig_pipeline.engine.errors import IntegrityHalt
from dbmig_pipeline.engine.extract import (
    BEFORE_ANY_ID,
    HASH_COLUMN,
    Position,
    Window,
    count_query,
    fetch_batch,
    fetch_by_ids,
    position_after,
    safe_horizon,
)
from dbmig_pipeline.engine.load import (Collision, find_collisions, keys_held_by_others, keys_held_in_target,
                                        missing_parents, release_keys, restore_keys, set_changing_keys_aside,
                                        soft_delete_rows, target_is_empty, upsert)
from dbmig_pipeline.engine.parked import ready_to_retry
from dbmig_pipeline.engine.pass_lock import entity_pass_lock
from dbmig_pipeline.engine.partitions import Partition, keys_of
from dbmig_pipeline.engine.plan import resuming_partition, start_position
from dbmig_pipeline.engine.preflight import run_preflight
from dbmig_pipeline.engine.progress import ProgressEvent, ProgressMeter
from dbmig_pipeline.engine.retrying import (DEFAULT_BATCH_RETRIES, DESTINATION_WRITE, LEDGER_READ, SOURCE_READ, BatchRef,
                                            BatchRetry, id_span, is_broken, release, replace_connection)
from dbmig_pipeline.engine.masking import mask_result
from dbmig_pipeline.engine.staging import STAGE_HASH_COLUMN, copy_csv, create_staging, encode_csv, staging_columns
from dbmig_pipeline.entities.spec import INTEGRITY, MISSING_PARENT, EntitySpec, TransformResult
from dbmig_pipeline.settings import url_secrets

log = logging.getLogger(__name__)

FULL = "full"
DIFFERENTIAL = "differential"
#: Repairs that re-read the source's current row by id: there the source wins even if its timestamp went back.
OVERWRITING_REASONS = frozenset({"reconcile_repair", "errors_retry"})

@dataclass(frozen=True)
class RunInfo:
    run_id: str | None
    operator: str
    mode: str = DIFFERENTIAL
    batch_size: int = 10_000
    lookback: timedelta = timedelta(minutes=5)
    #: save the cursor with every n-th batch (1: every batch)
    checkpoint_every: int = 1
    #: batches written at once, each in its own transaction on its own connection
    writers: int = 2
    #: technical failures of a batch retried in place before the step fails (engine/retrying.py)
    batch_retries: int = DEFAULT_BATCH_RETRIES
    #: DBMIG_MASK_KEY when PII is masked (non-production targets); never shown
    mask_key: bytes | None = field(default=None, repr=False)

@dataclass
class SyncStats:
    entity: str
    partitions: list[str]
    read: int = 0
    written: int = 0
    unchanged: int = 0
    parked: int = 0
    quarantined: int = 0
    stale: int = 0
    unparked: int = 0
    batches: int = 0
    seconds: float = 0.0
    watermark: datetime | None = None

    @property
    def rows_per_s(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {
            "entity": self.entity, "partitions": f"{self.partitions[0]}…{self.partitions[-1]}" if self.partitions else "",
            "read": self.read, "written": self.written, "unchanged": self.unchanged, "parked": self.parked,
            "quarantined": self.quarantined, "stale": self.stale, "unparked": self.unparked, "batches": self.batches,
            "seconds": round(self.seconds, 3), "rows_per_s": round(self.rows_per_s, 1),
            "watermark": self.watermark.isoformat() if self.watermark else None,
        }

@dataclass
class _BatchOutcome:
    written: list[int] = field(default_factory=list)
    unchanged: int = 0
    parked: int = 0
    quarantined: int = 0
    stale: int = 0
    #: the ids behind three of the counts: a batch's counters go to the partitions of its rows
    unchanged_ids: np.ndarray | list[int] = field(default_factory=list)
    parked_ids: list[int] = field(default_factory=list)
    quarantined_ids: list[int] = field(default_factory=list)

@dataclass
class _Prepared:
    """A batch compared with the ledger and transformed, ready to be written."""

    changed: pd.DataFrame
    result: TransformResult
    #: result.rows with their hashes, as the CSV the staging table's COPY reads
    stage_csv: bytes
    #: ids read for the first time by a pass of an entity with no history (`EntitySync.first_reads_before`):
    #: they have no ledger row, error or warning, so none was looked up and none is resolved or cleared.
    #: Every other written row has its old errors resolved and its old warnings cleared, whatever its
    #: ledger look-up found: a row read twice in a pass may be looked up (read ahead) before the batch
    #: that wrote its first version commits.
    first_reads: frozenset[int] = frozenset()
    #: ids whose hash the ledger holds already (not written)
    unchanged_ids: np.ndarray | tuple = ()

    @property
    def unchanged(self) -> int:
        return len(self.unchanged_ids)

    def slim(self, sync: "EntitySync") -> "_Prepared":
        """Only what the write needs once the CSV is made: a batch waiting for or in a writer must
        not hold the source's and the transform's Python objects (peak memory)."""
        spec = sync.spec
        keep = ["legacy_id", *(p.staging_column for p in spec.parents), *spec.unique_keys]
        return replace(self, changed=sync.slim(self.changed),
                       result=replace(self.result, rows=self.result.rows[keep].copy()))


@dataclass(frozen=True)
class _Checkpoint:
    """Where a scan batch leaves the pass: its place in the pass and the cursor after it."""

    seq: int  # 0, 1, 2 … in read order within the pass
    position: Position
    horizon: datetime


class _BatchReader:
    """Reads and prepares the next batch on its own connections (see EntitySync._scan).

    Its ledger look-up may run before the previous batch commits. A row
    changed while the pass runs is read again by a later batch, whose look-up
    can then miss the write of its first version: the row counts as changed
    (it is), and its old errors and warnings are cleaned up whatever the
    look-up found (`_Prepared.first_reads`).
    """

    def __init__(self, sync: "EntitySync"):
        self.sync = sync
        self.src = sync.source_engine.raw_connection()
        self.dst = sync.dest_engine.raw_connection()
        self.batches = 0  # non-empty batches read

    def read(self, window: Window, position: Position | None) -> tuple[datetime, pd.DataFrame, _Prepared | None]:
        """The batch after `position`, compared and transformed. A technical failure replaces the
        connection that failed and repeats that step (engine/retrying.py)."""
        sync = self.sync
        ref = BatchRef(sync.spec.name, sync._range_label(), sync.batch_offset + self.batches + 1,
                       "from the window start" if position is None else f"after {position.id}", SOURCE_READ)
        horizon, frame = sync.retry.run(lambda: self._fetch(window, position), renew=self._renew_source, ref=ref)
        if frame.empty:
            return horizon, frame, None
        self.batches += 1
        prepared = sync.retry.run(lambda: self._prepare(frame), renew=self._renew_dest,
                                  ref=replace(ref, legacy_ids=id_span(frame["id"]), step=LEDGER_READ))
        return horizon, sync.slim(frame), prepared.slim(sync)

    def _fetch(self, window: Window, position: Position | None) -> tuple[datetime, pd.DataFrame]:
        with self.src.cursor() as cur:
            horizon = safe_horizon(cur)
            frame = fetch_batch(cur, self.sync.spec, window, position, self.sync.run.batch_size)
        self.src.commit()
        return horizon, frame

    def _prepare(self, frame: pd.DataFrame) -> _Prepared:
        with self.dst.cursor() as cur:
            prepared = self.sync.prepare(cur, frame, frame.iloc[0:0], force=False)
        self.dst.rollback()
        return prepared

    def _renew_source(self) -> None:
        self.src = replace_connection(self.src, self.sync.source_engine)

    def _renew_dest(self) -> None:
        self.dst = replace_connection(self.dst, self.sync.dest_engine)

    def close(self) -> None:
        release(self.src)
        release(self.dst)


class _Restage(Exception):
    """The batch must be staged again with more rows (collision resolution)."""

    def __init__(self, extra: pd.DataFrame):
        self.extra = extra

class EntitySync:
    """Runs one pass; see `sync_entity`."""

    def __init__(self, source: Engine, dest: Engine, spec: EntitySpec, specs_by_name: dict[str, EntitySpec],
                 partitions: list[Partition], all_keys: list[str], run: RunInfo,
                 on_progress: Callable[[ProgressEvent], None] | None):
        self.spec = spec
        self.specs_by_name = specs_by_name
        self.partitions = partitions
        self.keys = [p.key for p in partitions]
        self.all_keys = all_keys
        self.run = run
        self.on_progress = on_progress
        self.stats = SyncStats(spec.name, self.keys)
        self.source_engine = source
        self.dest_engine = dest
        #: each thread (the pass's own, every writer) has its own connections: see `src` and `dst`
        self._local = threading.local()
        self._opened: list = []
        self._opened_lock = threading.Lock()
        self.retry = BatchRetry(run.batch_retries, dest, run.run_id, run.operator,
                                secrets=url_secrets(source.url) + url_secrets(dest.url))
        self.stage = f"stage_{spec.name}"
        #: batches committed for this entity by earlier attempts of the same run
        self.batch_offset = 0
        #: set when the pass starts on an entity with no history (no ledger row, open error or warning):
        #: a row whose cursor is older than this (the source's safe horizon at the pass start) was
        #: committed before the pass began, so the pass reads it once and finds nothing of it to look
        #: up. A row changed while the pass runs has a newer cursor and is looked up as usual
        #: (a pass may read it twice). None: every row is looked up.
        self.first_reads_before: datetime | None = None
        #: the target table held no row when such a pass began: a batch of first reads only is then
        #: written with plain INSERTs (`load.upsert`'s `new_rows`)
        self.target_was_empty = False
        #: partition progress of the batches committed since the last saved checkpoint
        self._pending_progress: dict[str, bk.PartitionProgress] = {}
        self._pending_batches = 0
        #: commit order of parallel writers (see `_commit_batch`), all under `_commit_lock`
        self._commit_lock = threading.Lock()
        self._next_seq = 0
        self._committed_ahead: dict[int, tuple[dict[str, bk.PartitionProgress], _Checkpoint]] = {}

    # --- connections: one pair per thread --------------------------------

    def _connection(self, side: str, engine: Engine):
        conn = getattr(self._local, side, None)
        if conn is None:
            conn = engine.raw_connection()
            self._set_connection(side, conn)
        return conn

    def _set_connection(self, side: str, conn) -> None:
        setattr(self._local, side, conn)
        with self._opened_lock:
            self._opened.append(conn)

    @property
    def src(self):
        return self._connection("src", self.source_engine)

    @src.setter
    def src(self, conn) -> None:
        self._set_connection("src", conn)

    @property
    def dst(self):
        return self._connection("dst", self.dest_engine)

    @dst.setter
    def dst(self, conn) -> None:
        self._set_connection("dst", conn)

    def close(self) -> None:
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            release(conn)

    def _renew_source(self) -> None:
        """After a failed source read: the connection replaced (engine/retrying.py)."""
        self.src = replace_connection(self.src, self.source_engine)

    def _renew_for_write(self) -> None:
        """After a failed write: its transaction rolled back, the connection replaced; the source
        connection (collision look-ups) too if it dropped."""
        self.dst = replace_connection(self.dst, self.dest_engine)
        src = getattr(self._local, "src", None)
        if src is not None and is_broken(src):
            self._renew_source()

    # --- the pass --------------------------------------------------------

    def run_pass(self) -> SyncStats:
        started = time.monotonic()
        with self.src.cursor() as cur:
            run_preflight(cur, self.spec, self.dst, operator=self.run.operator, run_id=self.run.run_id)
        self.src.commit()
        with self.dst.cursor() as cur:
            before = bk.start_partitions(cur, self.spec.name, self.keys, self.run.run_id)
            resumable = resuming_partition(before, self.partitions)
            if (self.run.mode == FULL and resumable is not None
                    and bk.pass_mode(cur, self.spec.name, before[resumable.key].run_id) != FULL):
                # A full pass re-reads the window: it resumes an interrupted full pass only, never a
                # differential one (which would skip every row before its cursor).
                before = {}
            self.batch_offset = bk.last_batch_no(cur, self.spec.name, self.run.run_id)
            bk.audit(cur, "run_started", entity=self.spec.name, partition_key=self._range_label(),
                     run_id=self.run.run_id, operator=self.run.operator, details={"mode": self.run.mode})
        self.dst.commit()
        try:
            self._retry_parked()
            position = start_position(before, self.partitions, self.spec, self.run.mode, self.run.lookback)
            if self.run.mode == FULL and resuming_partition(before, self.partitions) is None:
                # A fresh full pass rebuilds the cursors; an older run's must not be resumed from.
                with self.dst.cursor() as cur:
                    bk.reset_cursors(cur, self.spec.name, self.keys)
                self.dst.commit()
            self.first_reads_before, self.target_was_empty = self._first_reads_start()
            self._scan(position)
        except IntegrityHalt as exc:
            self._fail("failed", str(exc), exc.legacy_ids)
            raise
        except BaseException as exc:
            self._fail("failed", failure_text(exc), [])
            raise
        self.stats.seconds = time.monotonic() - started
        # The pass's own connection idled while the writers worked: a drop meanwhile is retried here too.
        self.retry.run(partial(self._finish, CommitFate()), renew=self._renew_for_write,
                       ref=BatchRef(self.spec.name, self._range_label(), None, "end of pass", DESTINATION_WRITE))
        return self.stats

    def _finish(self, fate: CommitFate) -> None:
        if fate.went_through(self.dst):  # an earlier attempt's unanswered COMMIT took effect
            fate.after()
            return
        with self.dst.cursor() as cur:
            if self._pending_progress:
                saved = self._save_progress(cur, self._pending_progress)
                bk.audit(cur, "checkpoint_saved", level="detail", entity=self.spec.name, run_id=self.run.run_id,
                         operator=self.run.operator,
                         details={"batches": self._pending_batches,
                                  "cursor": [str(saved.ts) if saved.ts else None, saved.id] if saved else None})
            bk.save_checkpoint(cur, self.spec.name, {}, self.keys)
            bk.audit(cur, "run_finished", entity=self.spec.name, partition_key=self._range_label(),
                     run_id=self.run.run_id, operator=self.run.operator, details=self.stats.as_dict())
        fate.commit(self.dst, after=self._forget_saved_progress)

    def _forget_saved_progress(self) -> None:
        self._pending_progress, self._pending_batches = {}, 0

    def _range_label(self) -> str | None:
        """The partitions of the pass; None for repairs by id, which have none."""
        if not self.keys:
            return None
        return self.keys[0] if len(self.keys) == 1 else f"{self.keys[0]}..{self.keys[-1]}"

    def _scan(self, position: Position | None) -> None:
        """One keyset pass. The next batch is read, compared and transformed on
        separate connections while earlier ones are written, up to
        `RunInfo.writers` of them at once, each on its own connection: the
        database work of the writes overlaps, and the Python work of the read
        overlaps both. The cursor is saved only over batches that all
        committed (`_commit_batch`)."""
        window = Window(self.partitions[0].start, self.partitions[-1].end)
        meter = ProgressMeter(self.spec.name, 0)
        reader = _BatchReader(self)
        writing: deque[tuple[Future, int]] = deque()
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"dbmig-read-{self.spec.name}") as reads, \
                    ThreadPoolExecutor(max_workers=self.run.writers,
                                       thread_name_prefix=f"dbmig-write-{self.spec.name}") as writes:
                pending = reads.submit(reader.read, window, position)
                # the progress total is counted while the first batch is read (a differential pass spends
                # as long counting as reading its first batch); here, not on a thread of its own: one
                # more thread's malloc arena raised the peak RSS of a full load by 30 MiB
                meter.total = self._count(window, position)
                try:
                    while True:
                        horizon, frame, prepared = pending.result()
                        if frame.empty:
                            if position is not None and position.in_nulls:
                                position = None  # NULL-cursor rows done; now the timestamped ones
                                pending = reads.submit(reader.read, window, position)
                                continue
                            break
                        position = position_after(self.src, self.spec, frame, position)
                        pending = reads.submit(reader.read, window, position)
                        checkpoint = _Checkpoint(self.stats.batches, position, horizon)
                        self.stats.batches += 1
                        writing.append((writes.submit(self._process, frame, checkpoint=checkpoint,
                                                      prepared=prepared), len(frame)))
                        self._settle(writing, self.run.writers - 1, meter)
                    self._settle(writing, 0, meter)
                except BaseException:
                    for future, _ in writing:  # let the writes in flight end before the failure is recorded
                        future.cancel()
                    wait([f for f, _ in writing])
                    raise
        finally:
            reader.close()

    def _first_reads_start(self) -> tuple[datetime | None, bool]:
        """See `first_reads_before` and `target_was_empty`: the source's safe horizon now and whether
        the target table is empty, if the entity has no history yet; (None, False) otherwise."""
        with self.dst.cursor() as cur:
            fresh = not bk.has_history(cur, self.spec.name)
            empty = fresh and target_is_empty(cur, self.spec)
        self.dst.commit()
        if not fresh:
            return None, False
        with self.src.cursor() as cur:
            horizon = safe_horizon(cur)
        self.src.commit()
        return horizon, empty

    def _first_reads(self, frame: pd.DataFrame) -> np.ndarray:
        """Mask of the rows of a scan batch that are first reads (see `first_reads_before`); NULL cursors
        never are."""
        none = np.zeros(len(frame), dtype=bool)
        if self.first_reads_before is None or frame.empty:
            return none
        cursor = frame[self.spec.cursor_column]
        try:
            older = cursor < pd.Timestamp(self.first_reads_before)
        except TypeError:  # a cursor type that does not compare with the horizon: look every row up
            return none
        return (older.fillna(False).astype(bool) & cursor.notna()).to_numpy(dtype=bool)

    def _settle(self, writing: "deque[tuple[Future, int]]", keep: int, meter: ProgressMeter) -> None:
        """Wait for the oldest writes until at most `keep` are in flight; a failed one raises."""
        while len(writing) > keep:
            future, rows = writing[0]
            future.result()
            writing.popleft()
            self.stats.read += rows
            if self.on_progress:
                self.on_progress(meter.event(self.stats.batches - len(writing), self.stats.read))

    def _count(self, window: Window, position: Position | None) -> int:
        include_nulls = position is not None and position.in_nulls
        query, params = count_query(self.spec, window, position, include_nulls)
        with self.src.cursor() as cur:
            cur.execute(query, params)
            total = cur.fetchone()[0]
        self.src.commit()
        return total

    def _retry_parked(self) -> None:
        """Children parked for a missing parent get another chance once the parent they wait for is
        in the target (engine/parked.py); rows named by an integrity halt at every run. The latter
        matters once the source is fixed: a row loaded before its conflicting partner was read lies
        behind the cursor, so no scan would ever resolve its error; while the conflict lasts,
        retrying it stops the entity again."""
        with self.dst.cursor() as cur:
            ready = ready_to_retry(cur, self.spec, self.specs_by_name)
            halted = bk.open_error_ids(cur, self.spec.name, INTEGRITY)
        self.dst.commit()
        outcome = self.reprocess_ids(sorted(set(ready) | set(halted)), reason="retry_parked")
        self.stats.unparked += len(set(outcome.written) & set(ready))

    # --- targeted repairs (reconciliation, `dbmig errors retry`) ---------

    def reprocess_ids(self, ids: list[int], reason: str) -> _BatchOutcome:
        """Re-read these source rows by id and sync them, whatever their hashes say."""
        total = _BatchOutcome()
        for start in range(0, len(ids), self.run.batch_size):
            chunk = ids[start:start + self.run.batch_size]
            frame = self.retry.run(partial(self._fetch_ids, chunk), renew=self._renew_source,
                                   ref=BatchRef(self.spec.name, "", None, id_span(chunk), SOURCE_READ))
            gone = sorted(set(chunk) - set(int(i) for i in frame["id"]))
            outcome = self._process(frame, checkpoint=None, force=True, resolve_gone=gone, reason=reason)
            total.written += outcome.written
            total.parked += outcome.parked
            total.quarantined += outcome.quarantined
            total.stale += outcome.stale
        return total

    def _fetch_ids(self, ids: list[int]) -> pd.DataFrame:
        with self.src.cursor() as cur:
            frame = fetch_by_ids(cur, self.spec, ids)
        self.src.commit()
        return frame

    def soft_delete(self, ids: list[int]) -> int:
        """Mark target rows whose source row disappeared; children are not touched."""
        marked = 0
        for start in range(0, len(ids), self.run.batch_size):
            chunk = ids[start:start + self.run.batch_size]
            with self.dst.cursor() as cur:
                marked += self._mark_deleted(cur, chunk)
                bk.audit(cur, "rows_deleted", level="detail", entity=self.spec.name, run_id=self.run.run_id,
                         operator=self.run.operator,
                         details={"rows": len(chunk), "legacy_id_range": [min(chunk), max(chunk)]})
            self.dst.commit()
        return marked

    def _mark_deleted(self, cur, ids: list[int]) -> int:
        """Soft-delete target rows (their ledger rows as deleted, their open errors resolved), in the
        caller's transaction; returns the rows newly marked."""
        marked = soft_delete_rows(cur, self.spec, ids)
        bk.mark_ledger_deleted(cur, self.spec.name, ids)
        bk.resolve_errors(cur, self.spec.name, ids)
        return marked

    # --- one batch -------------------------------------------------------

    def _process(self, frame: pd.DataFrame, *, checkpoint: _Checkpoint | None,
                 force: bool = False, resolve_gone: list[int] | None = None, reason: str = "",
                 prepared: "_Prepared | None" = None) -> _BatchOutcome:
        extra = frame.iloc[0:0]
        fate = CommitFate()
        for attempt in range(3):
            try:
                outcome = self._write(frame, checkpoint, partial(
                    self._load_batch, frame, extra, checkpoint=checkpoint, force=force, resolve_gone=resolve_gone,
                    allow_restage=attempt < 2, fate=fate, reason=reason,
                    prepared=prepared if attempt == 0 else None))
                break
            except _Restage as again:
                self.dst.rollback()
                extra = again.extra
            except BaseException:
                release_transaction(self.dst)  # a writer's failed batch holds nothing while the failure is recorded
                raise
        if checkpoint is not None:
            with self._commit_lock:
                self.stats.written += len(outcome.written)
                self.stats.unchanged += outcome.unchanged
                self.stats.parked += outcome.parked
                self.stats.quarantined += outcome.quarantined
                self.stats.stale += outcome.stale
        return outcome

    def _write(self, frame: pd.DataFrame, checkpoint: _Checkpoint | None,
               load: Callable[[], _BatchOutcome]) -> _BatchOutcome:
        """`load` with in-batch retries (the pass's progress changes only once a batch committed, so a
        retry starts from where the failed attempt did)."""
        batch_no = None if checkpoint is None else self.batch_offset + checkpoint.seq + 1
        ref = BatchRef(self.spec.name, "" if checkpoint is None else self._range_label(), batch_no,
                       id_span(frame["id"]), DESTINATION_WRITE)
        return self.retry.run(load, renew=self._renew_for_write, ref=ref)

    def slim(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The columns of a source batch the write needs after its transform (ids, cursors, hashes);
        `_load_batch` reads the rest again should it have to transform the batch anew."""
        keep = ["id", self.spec.cursor_column, HASH_COLUMN]
        return frame[[*keep, exact_times.EXACT_COLUMN] if exact_times.EXACT_COLUMN in frame.columns else keep].copy()

    def prepare(self, cur, frame: pd.DataFrame, extra: pd.DataFrame, force: bool) -> "_Prepared":
        """Compare hashes with the ledger (`cur`: any destination cursor) and transform what changed."""
        spec = self.spec
        extra_ids = {int(i) for i in extra["id"]}
        first_reads: frozenset[int] = frozenset()
        unchanged_ids: np.ndarray | tuple = ()
        if force:
            changed = frame
        else:
            first = self._first_reads(frame)
            ids = frame["id"].to_numpy()
            # rows pulled in to settle a key collision were migrated before: never first reads
            first_reads = frozenset(int(i) for i in ids[first]) - extra_ids
            recorded = bk.recorded_hashes(cur, spec.name, list(ids[~first]))
            same = (frame["id"].map(recorded).astype(object) == frame[HASH_COLUMN].astype(str)).to_numpy(dtype=bool)
            changed = frame[~same]
            unchanged_ids = ids[same].astype("int64")
        if len(extra):
            changed = pd.concat([extra, changed[~changed["id"].isin(extra["id"])]], ignore_index=True)
        result = spec.transform(changed[list(spec.source_columns)])
        copied = exact_times.copied_times(spec)
        if self.run.mask_key is not None:  # before anything of the batch leaves the transform
            result = mask_result(result, spec, self.run.mask_key)
            copied = tuple(pair for pair in copied if pair[1] not in spec.pii_columns)  # masked: not a copy
        hashes = pd.Series(changed[HASH_COLUMN].to_numpy(), index=changed["id"].to_numpy(dtype="int64"))
        staged = result.rows.assign(**{STAGE_HASH_COLUMN.name: result.rows["legacy_id"].map(hashes)})
        exact = exact_times.overrides(exact_times.texts_by_id(changed), staged, copied)
        return _Prepared(changed, result, encode_csv(staged, staging_columns(spec), exact), first_reads, unchanged_ids)

    def _load_batch(self, frame: pd.DataFrame, extra: pd.DataFrame, *, checkpoint, force: bool,
                    resolve_gone: list[int] | None, allow_restage: bool, fate: CommitFate, reason: str = "",
                    prepared: "_Prepared | None" = None) -> _BatchOutcome:
        if fate.went_through(self.dst):
            log.warning("%s, batch of legacy ids %s: its COMMIT went through although the connection dropped "
                        "before the server's answer; not applied again", self.spec.name, id_span(frame["id"]))
            if fate.after is not None:
                with self._commit_lock:
                    fate.after()
            return fate.result
        spec = self.spec
        outcome = _BatchOutcome()
        with self.dst.cursor() as cur:
            if prepared is None or len(extra):
                prepared = self.prepare(cur, self._whole(frame), extra, force)
            changed, result = prepared.changed, prepared.result
            outcome.unchanged = prepared.unchanged
            columns = staging_columns(spec)
            create_staging(cur, self.stage, columns)
            copy_csv(cur, self.stage, prepared.stage_csv, columns)
            new_rows = self.target_was_empty and result.rows["legacy_id"].isin(prepared.first_reads).all()
            self._local.batch = result  # what a collision's message says of rows not written (`_collision_error`)
            written = self._upsert(cur, result.rows, changed, extra, allow_restage=allow_restage, reason=reason,
                                   new_rows=bool(new_rows))
            staged_ids = result.rows["legacy_id"].astype("int64")
            left_out = result.rows[~staged_ids.isin(written).to_numpy()]
            parked = missing_parents(cur, spec, left_out, self.specs_by_name) if len(left_out) else []
            held = left_out[left_out["legacy_id"].isin([p.legacy_id for p in parked]).to_numpy()]
            if len(held) and keys_held_in_target(cur, spec, held, list(staged_ids)):
                self._collisions(cur, changed, extra, allow_restage)  # a parked row's key is held in the target
            outcome.written = written
            outcome.parked = len(parked)
            outcome.quarantined = len(result.rejects)
            outcome.unchanged_ids = prepared.unchanged_ids
            outcome.parked_ids = [p.legacy_id for p in parked]
            outcome.quarantined_ids = [int(i) for i in result.rejects["legacy_id"]]
            outcome.stale = len(left_out) - len(parked)

            errors = result.rejects[["legacy_id", "category", "detail"]]
            if parked:
                errors = pd.concat([errors, pd.DataFrame(
                    [(p.legacy_id, MISSING_PARENT, p.detail, p.parent_entity, p.parent_id) for p in parked],
                    columns=["legacy_id", "category", "detail", "missing_parent_entity", "missing_parent_id"],
                    dtype=object)])  # object: a bigint parent id must not pass through float
            bk.record_errors(cur, spec.name, errors, self.run.run_id)
            rewritten = [i for i in written if i not in prepared.first_reads]
            bk.resolve_errors(cur, spec.name, rewritten)
            if resolve_gone:
                bk.resolve_errors(cur, spec.name, resolve_gone, [MISSING_PARENT, INTEGRITY])
            bk.record_warnings(cur, spec.name, result.warnings, written, self.run.run_id, clear_ids=rewritten)
            ledger = self._ledger_rows(changed, parked, result.rejects)
            bk.record_ledger(cur, spec.name, ledger, overwrite=reason in OVERWRITING_REASONS,
                             exact=exact_times.overrides(exact_times.texts_by_id(changed), ledger,
                                                         ((spec.cursor_column, "source_updated_at"),)))
            if checkpoint is not None:
                self._commit_batch(cur, checkpoint, self._batch_progress(frame, outcome, checkpoint), fate, outcome)
                return outcome
            if len(frame) or resolve_gone:
                bk.audit(cur, reason or "rows_reprocessed", level="detail", entity=spec.name, run_id=self.run.run_id,
                         operator=self.run.operator,
                         details={"read": len(frame), "written": len(written), "parked": len(parked),
                                  "quarantined": len(result.rejects), "gone": len(resolve_gone or [])})
        fate.commit(self.dst, outcome)
        return outcome

    def _whole(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with every source column: a slimmed scan batch is read again by id (its current
        versions: a row changed since is the newer version, which the no-regression guard allows)."""
        if set(self.spec.source_columns) <= set(frame.columns):
            return frame
        with self.src.cursor() as scur:
            whole = fetch_by_ids(scur, self.spec, [int(i) for i in frame["id"]])
        self.src.commit()
        return whole

    def _upsert(self, cur, rows: pd.DataFrame, changed: pd.DataFrame, extra: pd.DataFrame, *,
                allow_restage: bool, reason: str, new_rows: bool = False) -> list[int]:
        """The staged rows written (engine/load.py). Natural keys that two legacy rows would share
        are looked up in the database only when the batch repeats one or the upsert fails on one.
        `new_rows`: see `upsert`; a row that was there after all (written by something other
        than this pass) or a natural-key collision sends the batch through the conflict-aware
        statement, which tells them apart."""
        spec = self.spec
        if any(rows[key].dropna().duplicated().any() for key in spec.unique_keys):
            self._collisions(cur, changed, extra, allow_restage)
        cur.execute("SAVEPOINT upsert")
        if new_rows:
            try:
                return upsert(cur, spec, self.stage, self.specs_by_name, new_rows=True)
            except psycopg2.errors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT upsert")
        overwrite = reason in OVERWRITING_REASONS
        try:
            return upsert(cur, spec, self.stage, self.specs_by_name, overwrite=overwrite)
        except psycopg2.errors.UniqueViolation as exc:
            violation = (exc.diag.message_detail or str(exc)).strip().rstrip(".")
        cur.execute("ROLLBACK TO SAVEPOINT upsert")
        self._collisions(cur, changed, extra, allow_restage)
        # No two rows of the batch share a key, and no row outside it holds one: the batch hands keys
        # over among its own rows (a swap, or a chain written in the wrong order)
        try:
            moved = set_changing_keys_aside(cur, spec, rows)
            written = upsert(cur, spec, self.stage, self.specs_by_name, overwrite=overwrite)
            released = restore_keys(cur, spec, moved, self.stage, overwrite=overwrite)
            if released:
                self._audit_released(cur, released, "parked with another key in the source; a live row of the batch "
                                                    "took theirs")
            return written
        except psycopg2.errors.UniqueViolation as exc:
            violation = (exc.diag.message_detail or str(exc)).strip().rstrip(".")
        cur.execute("ROLLBACK TO SAVEPOINT upsert")
        held = keys_held_by_others(cur, spec, rows)
        if held:
            raise self._collision_error(held)
        raise IntegrityHalt(
            f"{spec.name}: a unique key of {spec.target_schema}.{spec.target_table} would be shared by two "
            f"legacy rows: {violation}. Fix the source row(s), then run again; the batch was not written.",
            [int(i) for i in changed["id"]],
        )

    def _collisions(self, cur, changed: pd.DataFrame, extra: pd.DataFrame, allow_restage: bool) -> None:
        """Stops the batch over the staged rows' natural-key collisions: restages it with the target
        rows that hold a key when those changed in the source too (they may have given it up),
        otherwise halts the entity naming the ids. Target rows whose source row is gone give their
        key up (`_release`). Returns only when no collision is left."""
        spec = self.spec
        collisions = self._release_quarantined_holders(cur, find_collisions(cur, spec, self.stage))
        if not collisions:
            return
        pull = sorted({t for c in collisions for t in c.target_ids} - set(int(i) for i in changed["id"]))
        if pull:
            with self.src.cursor() as scur:
                pulled = fetch_by_ids(scur, spec, pull)
            self.src.commit()
            gone = sorted(set(pull) - {int(i) for i in pulled["id"]})
            if gone:
                self._release(cur, gone)
            if len(pulled) and allow_restage:
                raise _Restage(pd.concat([extra, pulled], ignore_index=True))
            if gone and all(c.target_ids and set(c.target_ids) <= set(gone) for c in collisions):
                return
        raise self._collision_error(collisions)

    def _release_quarantined_holders(self, cur, collisions: list[Collision]) -> list[Collision]:
        """Target rows holding a key the batch wants whose new version, in this batch, is quarantined
        under another key: they no longer have it in the source, so they give it up (`release_keys`)
        and keep their loaded version; one quarantined order stopped every order of the entity.
        Returns the collisions left."""
        batch: TransformResult | None = getattr(self._local, "batch", None)
        keys = None if batch is None else batch.rejected_keys
        if keys is None or keys.empty or not collisions:
            return collisions
        ids = keys["legacy_id"].astype("int64")
        new_keys = {key: dict(zip(ids, keys[key])) for key in {c.key for c in collisions}}
        left, gave_up = [], set()
        for c in collisions:
            new = new_keys[c.key]
            gave = {t for t in c.target_ids if t in new and (pd.isna(new[t]) or new[t] != c.value)}
            gave_up |= gave
            rest = tuple(t for t in c.target_ids if t not in gave)
            if rest or not gave:
                left.append(replace(c, target_ids=rest))
        if gave_up:
            released = sorted(gave_up)
            release_keys(cur, self.spec, released, deleted=False)
            self._audit_released(cur, released, "quarantined under another key in the source; a live row wants "
                                                "theirs")
        return left

    def _audit_released(self, cur, legacy_ids: list[int], why: str) -> None:
        """The `keys_released` audit row of target rows that gave their natural keys up (`release_keys`)."""
        bk.audit(cur, "keys_released", level="detail", entity=self.spec.name, run_id=self.run.run_id,
                 operator=self.run.operator, details={"rows": len(legacy_ids), "legacy_ids": legacy_ids[:100],
                                                      "why": why})

    def _release(self, cur, gone: list[int]) -> None:
        """Target rows whose source row was deleted, holding a key a live row now has: soft-deleted
        (if reconcile has not done it yet; their source rows are gone, checked by id) and their keys
        released (engine/load.py `release_keys`), in the batch's transaction. A deleted order's number
        reused by a new order stopped orders for good: no fix in the source could clear it."""
        self._mark_deleted(cur, gone)
        release_keys(cur, self.spec, gone)
        self._audit_released(cur, gone, "gone from the source; their natural keys are wanted by live rows")

    def _ledger_rows(self, changed: pd.DataFrame, parked, rejects: pd.DataFrame) -> pd.DataFrame:
        """Ledger rows of the batch's rows that were not loaded (the upsert records the loaded ones)."""
        outcome = pd.Series(None, index=changed.index, dtype=object)
        ids = changed["id"]
        outcome[ids.isin([p.legacy_id for p in parked])] = "parked"
        outcome[ids.isin(rejects["legacy_id"])] = "quarantined"
        keep = outcome.notna()
        return pd.DataFrame({
            "legacy_id": ids[keep], "row_hash": changed.loc[keep, HASH_COLUMN],
            "source_updated_at": changed.loc[keep, self.spec.cursor_column], "outcome": outcome[keep],
        })

    def _batch_progress(self, frame: pd.DataFrame, outcome: _BatchOutcome,
                        checkpoint: _Checkpoint) -> dict[str, bk.PartitionProgress]:
        """Cursor and counters per partition the batch touched; the cursor never passes the source's
        safe horizon."""
        spec, position, horizon = self.spec, checkpoint.position, checkpoint.horizon
        keys = keys_of(frame[spec.cursor_column], self.all_keys)
        lasts = frame.assign(_key=keys.to_numpy()).drop_duplicates("_key", keep="last")
        counts = keys.value_counts()
        progress: dict[str, bk.PartitionProgress] = {}
        for key, ts, row_id in zip(lasts["_key"], lasts[spec.cursor_column], lasts["id"]):
            ts = None if position.in_nulls or pd.isna(ts) else ts
            # the batch's own last row carries the exact text of an infinite cursor
            text = position.ts_text if int(row_id) == position.id and not position.in_nulls else None
            cursor = Position(ts, int(row_id), position.in_nulls, text)
            if ts is not None and ts > horizon:
                cursor = Position(horizon, BEFORE_ANY_ID)
            progress[key] = bk.PartitionProgress(cursor=cursor, read=int(counts[key]))
        # each row counts in its own partition; rows pulled in from elsewhere (a key collision) in the last
        last = lasts["_key"].max()
        counted = (("written", outcome.written), ("unchanged", outcome.unchanged_ids),
                   ("parked", outcome.parked_ids), ("quarantined", outcome.quarantined_ids))
        if len(progress) == 1:
            for counter, ids in counted:
                setattr(progress[last], counter, len(ids))
            return progress
        frame_ids = frame["id"].to_numpy(dtype="int64")
        codes, names = pd.factorize(keys)
        for counter, ids in counted:
            if not len(ids):
                continue
            ids = np.asarray(ids, dtype="int64")
            in_batch = np.isin(frame_ids, ids)  # (ids are unique within a batch, as in its frame)
            per_key = dict(zip(names, np.bincount(codes[in_batch], minlength=len(names)).tolist()))
            per_key[last] += len(ids) - int(in_batch.sum())
            for key, n in per_key.items():
                setattr(progress[key], counter, getattr(progress[key], counter) + n)
        return progress

    def _commit_batch(self, cur, checkpoint: _Checkpoint, progress: dict[str, bk.PartitionProgress],
                      fate: CommitFate, outcome: _BatchOutcome) -> None:
        """Commit a scan batch and, when it closes a run of committed batches, the cursor after them.

        Parallel writers commit in any order, but the saved cursor must never
        pass a batch that is not committed: a batch committing ahead of an
        older one leaves its progress here, and the older one's commit carries
        it. The cursor is saved with every `RunInfo.checkpoint_every`-th batch
        (default: every batch); a crash re-reads what lies after it, and the
        rows of batches committed beyond it are skipped by hash. Shared state
        changes only after the commit succeeded, so a retried batch starts
        from the same state; one whose commit went through unanswered runs
        the same change when its retry learns so (`CommitFate`).
        """
        fate.note(cur)
        with self._commit_lock:
            if checkpoint.seq != self._next_seq:
                self._audit_batch(cur, checkpoint, progress, None, 0)
                fate.commit_noted(self.dst, outcome, partial(self._committed_ahead_of_order, checkpoint, progress))
                return
            pending = {k: replace(p) for k, p in self._pending_progress.items()}
            batches = [(progress, checkpoint)]
            seq = checkpoint.seq + 1
            while seq in self._committed_ahead:
                batches.append(self._committed_ahead[seq])
                seq += 1
            for batch_progress, _ in batches:
                _merge_progress(pending, batch_progress)
            pending_batches = self._pending_batches + len(batches)
            flushed = pending_batches >= self.run.checkpoint_every
            saved = self._save_progress(cur, pending) if flushed else None
            self._audit_batch(cur, checkpoint, progress, saved, pending_batches if flushed else 0)
            fate.commit_noted(self.dst, outcome, partial(
                self._committed_in_order, checkpoint.seq, seq, ({}, 0) if flushed else (pending, pending_batches)))

    def _committed_ahead_of_order(self, checkpoint: _Checkpoint, progress: dict[str, bk.PartitionProgress]) -> None:
        """After the commit of a batch that an older one has not yet caught up with (under `_commit_lock`)."""
        self._committed_ahead[checkpoint.seq] = (progress, checkpoint)
        self._take_up_committed_ahead()

    def _committed_in_order(self, seq: int, next_seq: int,
                            pending: tuple[dict[str, bk.PartitionProgress], int]) -> None:
        """After the commit of the oldest uncommitted batch, which carried the batches committed ahead of
        it up to `next_seq` and left `pending` to the next checkpoint (under `_commit_lock`)."""
        for done in range(seq + 1, next_seq):
            del self._committed_ahead[done]
        self._next_seq = next_seq
        self._pending_progress, self._pending_batches = pending
        self._take_up_committed_ahead()

    def _take_up_committed_ahead(self) -> None:
        """Batches committed ahead that now directly follow the committed ones join the pending progress,
        saved by the next checkpoint. Never the case while commits are answered (the oldest batch's
        commit carries them); after one whose answer was lost, the batches after it may have committed
        before its retry learned that it had too."""
        while self._next_seq in self._committed_ahead:
            batch_progress, _ = self._committed_ahead.pop(self._next_seq)
            _merge_progress(self._pending_progress, batch_progress)
            self._pending_batches += 1
            self._next_seq += 1

    def _save_progress(self, cur, progress: dict[str, bk.PartitionProgress]) -> Position | None:
        """Cursors and counters of committed batches saved; returns the cursor of the newest partition."""
        batch_key = max(progress)
        bk.save_checkpoint(cur, self.spec.name, progress, [k for k in self.keys if k < batch_key])
        saved = progress[batch_key].cursor
        if saved and saved.ts:
            self.stats.watermark = saved.ts
        return saved

    def _audit_batch(self, cur, checkpoint: _Checkpoint, progress: dict[str, bk.PartitionProgress],
                     saved: Position | None, checkpoint_batches: int) -> None:
        """One audit row per committed batch, in its transaction: what it did, and the cursor when one
        was saved with it (covering `checkpoint_batches` batches)."""
        totals = {field: sum(getattr(p, field) for p in progress.values())
                  for field in ("read", "written", "unchanged", "parked", "quarantined")}
        bk.audit(cur, "batch_committed", level="detail", entity=self.spec.name, partition_key=max(progress),
                 run_id=self.run.run_id, batch_no=self.batch_offset + checkpoint.seq + 1, operator=self.run.operator,
                 details={**totals, "batches": checkpoint_batches,
                          "cursor": [str(saved.ts) if saved.ts else None, saved.id] if saved else None})

    def _collision_error(self, collisions) -> IntegrityHalt:
        parts = []
        ids: set[int] = set()
        for c in collisions[:10]:
            holders = sorted(set(c.legacy_ids) | set(c.target_ids))
            ids.update(holders)
            parts.append(f"{c.key} {c.value!r} ← legacy ids {', '.join(map(str, holders))}")
        more = f" (and {len(collisions) - 10} more)" if len(collisions) > 10 else ""
        held = self._held_by_old_versions(collisions[:10])
        advice = ("fix the row(s) named, then run again" if held
                  else "make these values distinct in the source, then run again")
        return IntegrityHalt(
            f"{self.spec.name}: distinct legacy rows map to the same {collisions[0].key}: "
            + "; ".join(parts) + more + "".join(f". {note}" for note in held)
            + f". The batch was not written and {self.spec.name} is stopped: {advice}.",
            sorted(ids),
        )

    def _held_by_old_versions(self, collisions) -> list[str]:
        """Why a row of the batch still holds a key in the target though its source row gave it up: its
        new version was not written because the target holds a newer one. (A quarantined or parked new
        version gives the key up: `_release_quarantined_holders`, `restore_keys`.)"""
        batch: TransformResult | None = getattr(self._local, "batch", None)
        if batch is None:
            return []
        staged = batch.rows.set_index(batch.rows["legacy_id"].astype("int64"))
        notes = []
        for c in collisions:
            for i in sorted(set(c.legacy_ids) | set(c.target_ids)):
                if i in staged.index and c.key in staged.columns and staged.at[i, c.key] != c.value:
                    notes.append(f"Legacy id {i} no longer has {c.value!r} in the source (now "
                                 f"{staged.at[i, c.key]!r}), but its new version was not written (the target holds "
                                 "a newer version, or it is parked or quarantined): the target keeps its old one "
                                 "until it loads")
        return notes

    def record_failure(self, message: str, legacy_ids: list[int]) -> None:
        """Record a halt outside `run_pass` (a reconciliation's repair): the rows' integrity errors and
        the audit row, as a failed pass leaves them."""
        self._fail("failed", message, legacy_ids)

    def _fail(self, status: str, message: str, legacy_ids: list[int]) -> None:
        try:
            self.dst = replace_connection(self.dst, self.dest_engine)  # it may have dropped while it idled
            with self.dst.cursor() as cur:
                if legacy_ids:
                    bk.record_errors(cur, self.spec.name, pd.DataFrame(
                        {"legacy_id": legacy_ids, "category": INTEGRITY, "detail": message[:2000]}), self.run.run_id)
                bk.fail_partitions(cur, self.spec.name, self.keys, status, message)
                bk.audit(cur, "run_failed", entity=self.spec.name, partition_key=self._range_label(),
                         run_id=self.run.run_id, operator=self.run.operator,
                         details={"error": message[:2000], "stats": self.stats.as_dict()})
            self.dst.commit()
        except Exception:  # the original error matters more than the bookkeeping
            log.exception("could not record the failure of %s", self.spec.name)


def failure_text(exc: BaseException) -> str:
    """What a failed pass records. An interruption (Ctrl-C, a cancelled Dagster run: exceptions outside
    `Exception`) often carries no text at all; it is named as what it is."""
    if not isinstance(exc, Exception):
        return (f"interrupted ({type(exc).__name__}): the run was cancelled or its process stopped; the next "
                "run resumes after the last committed batch")
    return f"{type(exc).__name__}: {exc}"


def release_transaction(conn) -> None:
    """Roll back whatever `conn` has open; never raises (the failure at hand matters more)."""
    try:
        conn.rollback()
    except Exception:
        pass


def _merge_progress(into: dict[str, bk.PartitionProgress], batch: dict[str, bk.PartitionProgress]) -> None:
    """Add a later batch's partition progress: its cursors win, its counters add up."""
    for key, p in batch.items():
        q = into.setdefault(key, bk.PartitionProgress())
        q.cursor = p.cursor
        q.read += p.read
        q.written += p.written
        q.unchanged += p.unchanged
        q.parked += p.parked
        q.quarantined += p.quarantined


def sync_entity(source: Engine, dest: Engine, spec: EntitySpec, specs_by_name: dict[str, EntitySpec],
                partitions: list[Partition], all_keys: list[str], run: RunInfo,
                on_progress: Callable[[ProgressEvent], None] | None = None) -> SyncStats:
    """Move what changed in `partitions` of `spec` from source to destination; one pass of an
    entity at a time (engine/pass_lock.py)."""
    fix_mmap_threshold()  # the batches' buffers go back to the kernel when freed (engine/allocator.py)
    with entity_pass_lock(dest, spec.name):
        sync = EntitySync(source, dest, spec, specs_by_name, partitions, all_keys, run, on_progress)
        try:
            return sync.run_pass()
        finally:
            sync.close()
