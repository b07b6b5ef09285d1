"""Run state for incremental, resumable outputs (a small SQLite file).

Every output has a hidden state file beside it (``.NAME.featx-state``; inside
the folder for ``npy-dir``).  It records, per input that has been committed,
the input's identity (path, size, modification time, optional content hash)
and where its rows are, plus the committed lengths of the data files.  The
state file is the commit point: data is appended and made durable first,
then one SQLite transaction records it.  After a crash, whatever lies beyond
the recorded lengths is cut off and recomputed, so a resumed run ends with
exactly the output an uninterrupted run gives.

SQLite is in the standard library, transactional and indexed, so the state of
a million inputs is looked up without holding it in memory.
"""
from __future__ import annotations

import json
import os
import sqlite3
import stat
from dataclasses import dataclass
from typing import Any, Iterator, NamedTuple

from ..errors import OutputError

#: 2: inputs keyed by canonical absolute path as bytes (featx 0.2); 1 (no mark): as typed, text
SCHEMA_VERSION = 2


def _b(path: str | None) -> bytes | None:
    """A path as the bytes of its name (names that are not UTF-8 round-trip)."""
    return None if path is None else os.fsencode(path)


def _s(blob) -> str | None:
    if blob is None:
        return None
    return os.fsdecode(blob) if isinstance(blob, bytes) else blob


class Known(NamedTuple):
    """What the state holds of one committed input."""

    ident: "Identity"
    out: str | None
    nrows: int
    status: str | None

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    path BLOB PRIMARY KEY,   -- the input's canonical path, as the bytes of its name
    size INTEGER, mtime_ns INTEGER, hash TEXT,
    row0 INTEGER NOT NULL, nrows INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    out BLOB,            -- npy-dir: the input's path under the output folder (bytes)
    status TEXT          -- 'ok' or 'partial' (a video that broke off)
);
CREATE INDEX IF NOT EXISTS items_seq ON items(seq);
CREATE TABLE IF NOT EXISTS pending_renames (src BLOB PRIMARY KEY, dst BLOB NOT NULL);
"""


class Identity(NamedTuple):
    """What makes an input 'the same' as last time.

    ``boxes`` is a digest of the regions asked for (``--regions``), so new boxes
    for an unchanged image are redone too.  (A named tuple: a re-run builds one
    per input, and this is the cheapest immutable record.)
    """

    size: int | None
    mtime_ns: int | None
    hash: str | None = None
    boxes: str | None = None

    def stored_hash(self) -> str | None:
        if self.boxes is None:
            return self.hash
        return f"{self.hash or ''}|{self.boxes}"

    @staticmethod
    def from_stored(size, mtime_ns, stored: str | None) -> "Identity":
        if stored is not None and "|" in stored:
            h, b = stored.split("|", 1)
            return Identity(size, mtime_ns, h or None, b)
        return Identity(size, mtime_ns, stored)


def same(old: Identity | None, new: Identity | None, use_hash: bool) -> bool:
    """Is ``new`` the input recorded as ``old``?  By size and content hash with
    ``use_hash``, else by size and modification time."""
    if old is None or new is None or old.size != new.size or old.boxes != new.boxes:
        return False
    if use_hash:
        return old.hash is not None and old.hash == new.hash
    return old.mtime_ns == new.mtime_ns


def _identify_files(files, use_hash: bool) -> Identity | None:
    """Several files as one input (``files``: (name, path) pairs in their order): the
    total size and, in place of a time, a fingerprint of every file's name, size,
    modification time and inode (and a hash of their names and contents with
    ``use_hash``), so an edited, added, removed or replaced file makes the input
    'changed' — any of them, whatever time it was given (a frame restored from a backup
    with its older time, a new file renamed over one with the same time)."""
    import hashlib

    total = 0
    f = hashlib.blake2b(digest_size=8)
    d = hashlib.blake2b(digest_size=16) if use_hash else None
    try:
        for name, path in files:
            st = os.stat(path)
            total += st.st_size
            f.update(b"%s\0%d %d %d\0" % (name.encode("utf-8", "surrogateescape"), st.st_size,
                                          st.st_mtime_ns, st.st_ino))
            if d is not None:
                d.update(name.encode("utf-8", "surrogateescape") + b"\0")
                sub = identify(path, True)
                d.update((sub.hash if sub is not None and sub.hash else "").encode())
    except OSError:
        return None
    # a signed 64-bit integer: the state keeps it in the mtime_ns column
    fingerprint = int.from_bytes(f.digest(), "little", signed=True)
    return Identity(total, fingerprint, d.hexdigest() if d is not None else None)


def _identify_folder(path: str, use_hash: bool) -> Identity | None:
    """A frame folder: its files (not hidden ones) by name, as :func:`_identify_files`."""
    try:
        entries = sorted((e for e in os.scandir(path) if not e.name.startswith(".") and e.is_file()),
                         key=lambda e: e.name)
    except OSError:
        return None
    return _identify_files([(e.name, e.path) for e in entries], use_hash)


def identify_sequence(paths, use_hash: bool = False) -> Identity | None:
    """An image sequence named file by file (``flow a.png b.png``): every file, in order."""
    return _identify_files([(p, p) for p in paths], use_hash)


def identify(path: str, use_hash: bool = False) -> Identity | None:
    """Size and modification time (and a BLAKE2b content hash when asked); None if missing.
    For a folder (a frame sequence), the same over the files in it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return _identify_folder(path, use_hash)
    if not stat.S_ISREG(st.st_mode):  # a FIFO or a device: never read (it could block); it fails in the worker
        return None
    h = None
    if use_hash:
        import hashlib

        d = hashlib.blake2b(digest_size=16)
        try:
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    d.update(block)
        except OSError:
            return None
        h = d.hexdigest()
    return Identity(st.st_size, st.st_mtime_ns, h)


@dataclass
class Entry:
    """One committed input: where its rows are."""

    path: str
    ident: Identity | None
    row0: int
    nrows: int
    out: str | None = None
    status: str = "ok"


class State:
    """The state database of one output."""

    def __init__(self, path: str):
        self.path = path
        for p in (path, path + "-journal"):
            if os.path.islink(p):
                raise OutputError(f"{p} is a symbolic link", "featx never follows links where it keeps its "
                                  "state; remove it (or pass --overwrite)")
        try:
            self.db = sqlite3.connect(path, isolation_level=None)  # explicit transactions
            self.db.execute("PRAGMA journal_mode=DELETE")
            self.db.execute("PRAGMA synchronous=FULL")
            if self.db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0:
                # a new state: its tables and its schema mark in one transaction (a full disk or a
                # kill half-way leaves an empty file, not tables that look like an older featx's)
                self.db.executescript("BEGIN;" + SCHEMA + "INSERT INTO meta(k, v) VALUES ('schema', '%d');"
                                      "COMMIT;" % SCHEMA_VERSION)
            self._check_tables()
            version = self.get("schema", 1)
            self._seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM items").fetchone()[0]
        except (sqlite3.DatabaseError, ValueError) as exc:
            if getattr(self, "db", None) is not None:
                self.db.close()
            text = str(exc)
            if isinstance(exc, sqlite3.OperationalError) and any(
                    w in text for w in ("unable to open", "disk", "full", "readonly", "I/O", "locked")):
                from .atomic import OutputWriteError

                raise OutputWriteError(f"cannot open the state file {path}: {exc}",
                                       "check the folder is writable, the disk not full and the name not "
                                       "too long") from None
            raise OutputError(f"{path} is not a featx state file ({exc})",
                              "it keeps track of what the output holds; pass --overwrite to start the "
                              "output afresh") from None
        if version != SCHEMA_VERSION:
            self.db.close()
            raise OutputError(f"{path} was written by an earlier featx, which keyed inputs by the path "
                              "as typed (so ./p and p became two rows)",
                              "run once with --overwrite to rebuild the output: inputs are now keyed by "
                              "their absolute path")
        self._opened_at_seq = self._seq  # rows recorded from now on are this run's own

    def _check_tables(self) -> None:
        """The tables are featx's (another program's SQLite file is not a state)."""
        want = {"meta": {"k", "v"}, "items": {"path", "size", "mtime_ns", "hash", "row0", "nrows", "seq", "out",
                                              "status"}, "pending_renames": {"src", "dst"}}
        for table, cols in want.items():
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            if not cols <= have:
                raise sqlite3.DatabaseError(f"no featx table {table}({', '.join(sorted(cols))})")

    # -- meta -------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT v FROM meta WHERE k=?", (key,)).fetchone()
        if not row:
            return default
        try:
            return json.loads(row[0])
        except (TypeError, ValueError):
            raise OutputError(f"{self.path} is not a featx state file (its {key!r} is garbled)",
                              "pass --overwrite to start the output afresh") from None

    def _set(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(k, v) VALUES (?, ?)", (key, json.dumps(value)))

    def set_meta(self, **values: Any) -> None:
        with self.transaction():
            for k, v in values.items():
                self._set(k, v)

    # -- transactions -----------------------------------------------------
    class _Tx:
        def __init__(self, db):
            self.db = db

        def __enter__(self):
            self.db.execute("BEGIN IMMEDIATE")
            return self

        def __exit__(self, et, ev, tb):
            if et is None:
                self.db.execute("COMMIT")
            elif self.db.in_transaction:  # SQLite rolls back by itself on a full disk
                self.db.execute("ROLLBACK")
            return False

    def transaction(self):
        return State._Tx(self.db)

    # -- items ------------------------------------------------------------
    def lookup(self, path: str) -> Identity | None:
        row = self.db.execute("SELECT size, mtime_ns, hash FROM items WHERE path=?", (_b(path),)).fetchone()
        return None if row is None else Identity.from_stored(row[0], row[1], row[2])

    def lookup_many(self, paths: list[str]) -> dict[str, Known]:
        """What is committed of many paths, in one query (up to 500 at a time); the
        paths found are marked as seen by this run (see :meth:`unseen`)."""
        out: dict[str, Known] = {}
        ids: list[tuple[int]] = []
        from_stored = Identity.from_stored
        for i in range(0, len(paths), 500):
            part = [_b(p) for p in paths[i:i + 500]]
            q = ("SELECT rowid, path, size, mtime_ns, hash, out, nrows, status FROM items WHERE path IN (%s)"
                 % ",".join("?" * len(part)))
            for rowid, path, size, mtime, h, o, n, status in self.db.execute(q, part):
                out[_s(path)] = Known(from_stored(size, mtime, h), _s(o), n, status)
                ids.append((rowid,))
        self._mark_seen(ids)
        return out

    def rows_of(self, paths: list[str]) -> dict[str, tuple[int, int]]:
        """(first row, number of rows) of each of ``paths`` that is committed (no side effect)."""
        out: dict[str, tuple[int, int]] = {}
        for i in range(0, len(paths), 500):
            part = [_b(p) for p in paths[i:i + 500]]
            q = "SELECT path, row0, nrows FROM items WHERE path IN (%s)" % ",".join("?" * len(part))
            for path, row0, n in self.db.execute(q, part):
                out[_s(path)] = (row0, n)
        return out

    def live_count(self) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(nrows), 0) FROM items").fetchone()[0])

    def record(self, entries: list[Entry], renames: list[tuple[str, str]] | None = None,
               renumber: dict[int, int] | None = None, **meta: Any) -> None:
        """Commit items, meta values and files to rename (see :meth:`recover_renames`)
        in one transaction.  A full disk raises :class:`~featx.output.atomic.OutputWriteError`
        (nothing of this commit is recorded)."""
        try:
            self._record(entries, renames, renumber, meta)
        except sqlite3.OperationalError as exc:
            if "full" not in str(exc) and "I/O" not in str(exc):
                raise
            from .atomic import OutputWriteError

            raise OutputWriteError(f"cannot write {self.path}: {exc}",
                                   "what was committed is kept; free space and run the same command again "
                                   "to finish") from None

    def _record(self, entries, renames, renumber, meta) -> None:
        with self.transaction():
            if renumber:  # compaction: the new row numbers and the renames in one transaction
                self.db.executemany("UPDATE items SET row0=? WHERE rowid=?", [(r, i) for i, r in renumber.items()])
            for e in entries:
                self._seq += 1
                ident = e.ident or Identity(None, None, None)
                self.db.execute("INSERT OR REPLACE INTO items(path, size, mtime_ns, hash, row0, nrows, seq, out, "
                                "status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                (_b(e.path), ident.size, ident.mtime_ns, ident.stored_hash(), e.row0, e.nrows,
                                 self._seq, _b(e.out), e.status))
            for src, dst in renames or ():
                self.db.execute("INSERT OR REPLACE INTO pending_renames(src, dst) VALUES (?, ?)", (_b(src), _b(dst)))
            for k, v in meta.items():
                self._set(k, v)

    def reset(self) -> None:
        """Forget every input and length (the output is rebuilt from scratch)."""
        with self.transaction():
            self.db.execute("DELETE FROM items")
            self.db.execute("DELETE FROM pending_renames")
            self.db.execute("DELETE FROM meta WHERE k NOT IN ('schema', 'config')")

    # -- committed inputs seen by this run (a temporary table: memory stays flat) ---
    def _mark_seen(self, rowids: list[tuple[int]]) -> None:
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS seen (id INTEGER PRIMARY KEY)")
        self.db.executemany("INSERT OR IGNORE INTO seen(id) VALUES (?)", rowids)

    def unseen(self) -> Iterator[tuple[str, str | None]]:
        """(path, out) of inputs committed before this run that :meth:`lookup_many` did not
        find in it (rows this run recorded are its own inputs: they are left out)."""
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS seen (id INTEGER PRIMARY KEY)")
        rows = self.db.execute("SELECT path, out FROM items WHERE seq <= ? AND rowid NOT IN "
                               "(SELECT id FROM seen) ORDER BY seq", (self._opened_at_seq,)).fetchall()
        for p, o in rows:
            yield _s(p), _s(o)

    def partial(self) -> list[str]:
        return [_s(p) for (p,) in self.db.execute("SELECT path FROM items WHERE status='partial' ORDER BY seq")]

    def forget(self, paths: list[str], **meta: Any) -> None:
        with self.transaction():
            self.db.executemany("DELETE FROM items WHERE path=?", [(_b(p),) for p in paths])
            for k, v in meta.items():
                self._set(k, v)

    def items(self) -> Iterator[tuple]:
        """(path, size, mtime_ns, hash, row0, nrows, out, status) of every committed input."""
        for p, size, mtime, h, row0, n, o, status in self.db.execute(
                "SELECT path, size, mtime_ns, hash, row0, nrows, out, status FROM items").fetchall():
            yield _s(p), size, mtime, h, row0, n, _s(o), status

    def live_rows(self, rowids: bool = False) -> Iterator[tuple]:
        """(path, first row, number of rows) of every committed input, in row order
        (the item's rowid in place of its path with ``rowids``)."""
        for k, row0, n in self.db.execute("SELECT %s, row0, nrows FROM items ORDER BY row0, seq"
                                          % ("rowid" if rowids else "path")).fetchall():
            yield (k if rowids else _s(k)), row0, n

    # -- multi-file replacement ------------------------------------------
    def replace_files(self, pairs: list[tuple[str, str]], **meta: Any) -> None:
        """Rename each finished temporary file over its target, crash-safely.

        The renames and ``meta`` are recorded in one transaction first, so a
        crash half-way is rolled forward by :meth:`recover_renames`.
        """
        self.record([], renames=pairs, **meta)
        self.recover_renames()

    def recover_renames(self) -> None:
        rows = self.db.execute("SELECT src, dst FROM pending_renames ORDER BY rowid").fetchall()
        for src, dst in rows:
            src, dst = _s(src), _s(dst)
            if os.path.exists(src):
                os.replace(src, dst)
        if rows:
            with self.transaction():
                self.db.execute("DELETE FROM pending_renames")

    def close(self) -> None:
        self.db.close()


def check_config(state: State, config: dict[str, Any], output: str, ignore: tuple[str, ...] = ()) -> None:
    """Refuse to mix results of different extractors, parameters or options.

    The message names what differs as the user sets it: ``--resize: not set -> 256x256``,
    ``--bins: 9 -> 5``, ``extractor: hog -> gabor``.  ``ignore``: extractor parameters
    that do not change the numbers (the extractor's ``runtime_params``), left out of
    ``config`` but perhaps recorded by an older featx: they are left out of the recorded
    config too."""
    old = state.get("config")
    if old is not None and ignore and isinstance(old.get("extractor"), dict):
        old = {**old, "extractor": {k: v for k, v in old["extractor"].items() if k not in ignore}}
    if old is None or old == config:
        return
    was, now = (c.get("extractor", {}).get("name") if isinstance(c.get("extractor"), dict) else None
                for c in (old, config))
    if was != now:  # another extractor: its parameters and decoding differ as a matter of course
        raise OutputError(f"{output} was made by the extractor {was}, not {now} (extractor: {was} -> {now})",
                          "pass --overwrite to start a fresh output, or choose another -o")
    diffs = []
    for section in sorted(set(old) | set(config)):
        a, b = old.get(section), config.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if a.get(k) == b.get(k):
                    continue
                if k == "resize_mode" and (a.get("resize") is None or b.get("resize") is None):
                    continue  # follows --resize, which is named already
                if k == "decode":  # recorded only when JPEGs may be decoded at a reduced size
                    diffs.append("JPEG decoding: " + ("at the size needed -> every pixel (--exact-decode)"
                                                      if a.get(k) else "every pixel -> at the size needed"))
                    continue
                diffs.append(f"{_setting_name(section, k)}: {_setting_text(k, a.get(k))} -> "
                             f"{_setting_text(k, b.get(k))}")
        elif a != b:
            diffs.append(f"{section}: {_setting_text(section, a)} -> {_setting_text(section, b)}")
    hint = "pass --overwrite to start a fresh output, or choose another -o"
    if any(d.startswith("JPEG decoding: every pixel ->") for d in diffs) and len(diffs) == 1:
        # an output of an earlier featx (or of --exact-decode): continue it as it was made
        hint = "pass --exact-decode to continue it as it was made (every pixel decoded), or --overwrite"
    raise OutputError(f"{output} was made with other settings ({'; '.join(diffs[:6])})", hint)


def _setting_name(section: str, key: str) -> str:
    if section == "extractor" and key == "name":
        return "extractor"
    if key == "keys":
        return "key columns"
    if key == "pool":
        return "pooling"
    return "--" + key.replace("_", "-")


def pool_text(v: dict) -> str:
    """Pooling during extraction (a ``PoolSpec.record()``) as its flags say it."""
    words = [f"--pool-over {v.get('over')}", f"--pool-stats {','.join(map(str, v.get('stats') or ()))}"]
    if v.get("window"):
        words.append(f"--pool-window {v['window']} --pool-stride {v.get('stride')}")
    if v.get("pyramid"):
        words.append("--pool-pyramid")
    return " ".join(words)


def _setting_text(key: str, v: Any) -> str:
    """A recorded setting as it is written on the command line."""
    if v is None:
        return "not set"
    if key == "pool" and isinstance(v, dict):
        return pool_text(v)
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, (list, tuple)):
        if key == "shard" and len(v) == 2:
            return f"{v[0]}/{v[1]}"
        if key == "keys":
            return ",".join(map(str, v))
        return "x".join(map(str, v))
    return str(v)
