"""Where an Optuna study lives, and how several workers open the same one safely.

Three kinds of storage, picked by the ``--storage`` string:

* nothing: an SQLite file ``<out>/study.db`` (one machine, a few workers);
* ``journal:PATH``: an append-only journal file (:class:`optuna.storages.journal.JournalFileBackend`), for
  workers on several machines that share a filesystem (e.g. NFS);
* any SQLAlchemy URL (``sqlite:///...``, ``postgresql://...``, ``mysql+pymysql://...``): a database, for many
  machines. A PostgreSQL URL without a driver (``postgresql://`` or ``postgres://``) uses psycopg 3
  (``postgresql+psycopg://``, the ``postgres`` extra), whatever SQLAlchemy's own default.

Opening is done under an exclusive ``fcntl.flock`` on a lock file next to the storage, because the first use
of a new SQLite file (schema creation) races when two workers start at the same moment. RDB storages
record heartbeats, so a trial whose worker was killed is marked ``FAIL`` by the next worker that asks for a
trial once ``grace_period`` seconds have passed; the journal storage has no heartbeats, so its stale
``RUNNING`` trials are failed on request (:func:`fail_running_trials`, ``--fail-running``) once no worker of
the study is alive.

Workers on several machines share no lock file, so their first opening of a new database can race (two
``CREATE TABLE``/``CREATE TYPE`` at once: an ``IntegrityError`` on PostgreSQL); :func:`make_storage` retries it.
"""
from __future__ import annotations

import fcntl
import hashlib
import random
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Union

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

JOURNAL_PREFIX = "journal:"
#: seconds an SQLite connection waits for another worker's write lock before giving up
SQLITE_TIMEOUT = 60
#: attempts at opening a database whose schema another worker is creating at the same moment
OPEN_ATTEMPTS = 6
#: the PostgreSQL driver that URLs without one use, and where it comes from
POSTGRES_DRIVER = "postgresql+psycopg"
POSTGRES_INSTALL = "pip install 'affect-rmn[postgres]' (or: pip install 'psycopg[binary]')"


def resolve_storage_url(storage: Optional[str], out: Union[str, Path]) -> str:
    """The storage string of a study: ``storage`` itself, or ``sqlite:///<out>/study.db`` when it is empty.

    :param storage: ``None``/``""``, ``journal:PATH`` or an SQLAlchemy database URL
    :param out: the study's output directory (holds the default SQLite file)
    :return: a storage string accepted by :func:`make_storage`
    """
    if storage:
        if storage.startswith(JOURNAL_PREFIX):
            if not storage[len(JOURNAL_PREFIX):]:
                raise ValueError(f"--storage {storage}: give the journal file, e.g. journal:runs/tune/journal.log")
            return storage
        if "://" not in storage:
            raise ValueError(f"--storage {storage}: expected journal:PATH or a database URL such as "
                             "sqlite:///runs/tune/study.db or postgresql://user@host/db")
        return _with_postgres_driver(storage)
    return f"sqlite:///{(Path(out) / 'study.db').resolve()}"


def _with_postgres_driver(url: str) -> str:
    """``url`` with psycopg 3 as the driver when it is a PostgreSQL URL that names none.

    SQLAlchemy 2.0 maps ``postgresql://`` to psycopg2 and 2.1 to psycopg 3; naming it makes one install (the
    ``postgres`` extra) work with both. ``postgres://`` (Heroku style, refused by SQLAlchemy) is accepted too.
    """
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        return f"{POSTGRES_DRIVER}{sep}{rest}"
    return url


def display_url(url: str) -> str:
    """``url`` as it may be printed: a database URL's password replaced by ``***``."""
    if url.startswith(JOURNAL_PREFIX) or "://" not in url:
        return url
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def _sqlite_path(url: str) -> Optional[Path]:
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def lock_file_for(url: str, out: Union[str, Path]) -> Path:
    """The lock file that serialises opening ``url``: next to the SQLite/journal file, else in ``out``.

    (A lock in ``out`` only serialises the workers of one machine: with a database server used from many
    machines, create the study once first with ``--create-only``.)
    """
    if url.startswith(JOURNAL_PREFIX):
        path = Path(url[len(JOURNAL_PREFIX):])
        return path.with_name(path.name + ".open.lock")
    sqlite = _sqlite_path(url)
    if sqlite is not None:
        return sqlite.with_name(sqlite.name + ".lock")
    digest = hashlib.sha1(url.encode()).hexdigest()[:12]
    return Path(out) / f".storage-{digest}.lock"


@contextmanager
def file_lock(path: Union[str, Path]) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``path`` (created if missing) for the ``with`` block."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def make_storage(url: str, *, heartbeat_interval: Optional[int] = 60,
                 grace_period: Optional[int] = None) -> BaseStorage:
    """An Optuna storage for ``url`` (call it under :func:`file_lock`; :func:`open_study` does).

    Database storages get ``pool_pre_ping`` (a connection that idled through a long trial and was closed by the
    server or a firewall is replaced, not an error at the trial's end) and a heartbeat-stale callback that
    prints which trial was failed. The first opening of a new database is retried when another worker creates
    the same tables at the same moment (workers on other machines share no lock file).

    :param url: ``journal:PATH`` or an SQLAlchemy database URL (see :func:`resolve_storage_url`)
    :param heartbeat_interval: seconds between heartbeats of a running trial (RDB storages only; ``None``
        disables them)
    :param grace_period: seconds without a heartbeat after which a running trial counts as dead
        (default ``2 * heartbeat_interval``); must exceed the interval, or live trials would be failed
    :raises ValueError: a bad heartbeat setting, a missing driver (naming the package to install), or a
        database that cannot be reached (the driver's message, with the password hidden)
    """
    if heartbeat_interval is not None and heartbeat_interval < 1:
        raise ValueError(f"--heartbeat-interval {heartbeat_interval}: give whole seconds >= 1 (0 on the command "
                         "line disables heartbeats)")
    if grace_period is not None:
        if heartbeat_interval is None:
            raise ValueError(f"--grace-period {grace_period}: heartbeats are disabled; give --heartbeat-interval")
        if grace_period <= heartbeat_interval:
            raise ValueError(f"--grace-period {grace_period} with --heartbeat-interval {heartbeat_interval}: a live "
                             "trial would be failed between two of its heartbeats; give a longer grace period")
    if url.startswith(JOURNAL_PREFIX):
        path = Path(url[len(JOURNAL_PREFIX):])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    sqlite = _sqlite_path(url)
    if sqlite is not None:
        sqlite.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    attempt = 1
    while True:
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = RDBStorage(url, engine_kwargs=dict(engine_kwargs), heartbeat_interval=heartbeat_interval,
                                     grace_period=grace_period, heartbeat_stale_trial_callback=report_stale_trial)
            if sqlite is not None:
                _begin_immediate(storage.engine)
            return storage
        except ImportError as err:
            scheme = url.partition("://")[0]
            hint = POSTGRES_INSTALL if scheme == POSTGRES_DRIVER else f"install the driver that {scheme} names"
            raise ValueError(f"--storage {display_url(url)}: the database driver is not installed "
                             f"({err.__cause__ or err}): {hint}") from None
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as err:
            # another worker creating the same schema: a duplicate type or table; its tables exist once it commits
            racing = isinstance(err, sqlalchemy.exc.IntegrityError) or "already exists" in str(err.orig)
            if not racing or attempt == OPEN_ATTEMPTS:
                raise ValueError(f"--storage {display_url(url)}: cannot create Optuna's tables: "
                                 f"{_first_line(err)}") from None
            time.sleep(0.1 * 2 ** attempt * (1 + random.random()))
            attempt += 1
        except sqlalchemy.exc.OperationalError as err:
            raise ValueError(f"--storage {display_url(url)}: cannot open the database: "
                             f"{_first_line(err)}") from None


def _begin_immediate(engine: sqlalchemy.engine.Engine) -> None:
    """Make every transaction of an SQLite ``engine`` take the database's write lock when it begins.

    Optuna pops a waiting trial by reading that it is ``WAITING`` and marking it ``RUNNING`` in one session, with a
    row lock (``SELECT ... FOR UPDATE``) that SQLite does not have; and Python's sqlite3 driver begins a
    transaction only at the first write, so two workers can both read ``WAITING`` and both run the trial. With
    ``BEGIN IMMEDIATE`` the read and the write are one locked transaction (SQLAlchemy's recipe for pysqlite's
    transactions: the driver's own ``BEGIN`` switched off, SQLAlchemy's emitted instead). Transactions of
    other workers wait for the lock (up to :data:`SQLITE_TIMEOUT` seconds) instead of interleaving.
    """

    @sqlalchemy.event.listens_for(engine, "connect")
    def _driver_begins_nothing(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin_with_the_write_lock(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened while creating the tables predate the hooks


def _first_line(err: Exception) -> str:
    """The driver's own message of a SQLAlchemy error, first line only (no SQL, no background link)."""
    orig = getattr(err, "orig", None) or err
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0] if lines else type(orig).__name__


def report_stale_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Heartbeat-stale callback: say on stderr which trial was failed because its worker fell silent."""
    print(f"trial {trial.number} of study {study.study_name!r} marked FAIL: no heartbeat for more than the grace "
          "period (its worker was killed or lost the database)", file=sys.stderr)


def open_study(study_name: str, url: str, out: Union[str, Path], *, direction: str,
               sampler: Optional[optuna.samplers.BaseSampler] = None,
               pruner: Optional[optuna.pruners.BasePruner] = None, user_attrs: Optional[dict] = None,
               heartbeat_interval: Optional[int] = 60, grace_period: Optional[int] = None,
               initial_attrs: Optional[dict] = None) -> optuna.Study:
    """Create the study ``study_name`` in ``url``, or load it when it exists (``load_if_exists=True``).

    Storage creation and study creation happen under one file lock, so any number of workers may call this
    at the same time. On creation, ``user_attrs`` and ``initial_attrs`` are stored on the study; on loading,
    ``user_attrs`` (the settings every worker must share) are compared with the stored ones and a difference is
    an error naming the field, and so is a different optimisation direction. ``initial_attrs`` are not compared
    (the caller checks what must agree, e.g. :func:`settings_diff` of some of their fields).

    :param direction: ``"minimize"`` or ``"maximize"``
    :return: the study, ready for ``optimize``
    """
    with file_lock(lock_file_for(url, out)):
        storage = make_storage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
        study = optuna.create_study(storage=storage, study_name=study_name, direction=direction,
                                    sampler=sampler, pruner=pruner, load_if_exists=True)
        stored = study.user_attrs
        if not stored and study.trials == [] and (user_attrs or initial_attrs):
            stored = {**(initial_attrs or {}), **(user_attrs or {})}
            for key, value in stored.items():
                study.set_user_attr(key, value)
    wanted = optuna.study.StudyDirection.MAXIMIZE if direction == "maximize" else optuna.study.StudyDirection.MINIMIZE
    if study.direction != wanted:
        raise ValueError(f"study {study_name!r} in {display_url(url)} is a {study.direction.name.lower()} study; "
                         f"this run would {direction} (a different --objective): use the same objective or another "
                         "--study")
    for key, value in (user_attrs or {}).items():
        if key in stored and stored[key] != value:
            raise ValueError(f"study {study_name!r} in {display_url(url)} was created with {key} "
                             f"{settings_diff(stored[key], value)}: use the same settings to add trials to it, or "
                             "another --study / --out")
    return study


def settings_diff(old, new) -> str:
    """What differs between two settings: ``key=old (this run: new)`` per differing key of two dicts, else the two
    values."""
    if isinstance(old, dict) and isinstance(new, dict):
        parts = [f"{k}={old.get(k)!r} (this run: {new.get(k)!r})" for k in sorted(set(old) | set(new))
                 if old.get(k) != new.get(k)]
        return ", ".join(parts)
    return f"{old!r} (this run: {new!r})"


def fail_running_trials(study: optuna.Study) -> list:
    """Mark every ``RUNNING`` trial of ``study`` as ``FAIL``; returns their numbers.

    Only for when no worker of the study is alive (e.g. after a crash with the journal storage, which has
    no heartbeats): a live worker's trial would be failed too, and its result then rejected.
    """
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        try:
            if study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                failed.append(trial.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # it finished meanwhile
    return failed


def dashboard_command(url: str) -> str:
    """The shell command that opens the study's storage in optuna-dashboard (a database password as ``***``)."""
    if url.startswith(JOURNAL_PREFIX):
        return f"optuna-dashboard {url[len(JOURNAL_PREFIX):]}"
    return f"optuna-dashboard '{display_url(url)}'"


__all__ = ["resolve_storage_url", "display_url", "lock_file_for", "file_lock", "make_storage", "report_stale_trial",
           "open_study", "fail_running_trials", "dashboard_command", "JOURNAL_PREFIX"]
