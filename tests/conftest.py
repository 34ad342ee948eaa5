"""Shared fixtures: small synthetic data so every test runs in seconds, and a throwaway PostgreSQL server."""
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, Optional

import pytest
import torch

from affect_env.data import load_dataset

# The networks under test are small: one thread is faster than two competing ones (and keeps CI steady).
torch.set_num_threads(1)

FIXTURES = Path(__file__).parent / "data"
CEAP_SUBSET = FIXTURES / "ceap360vr_subset"
SMALL_SYNTHETIC = dict(n_movies=(6, 2, 2), length=240, dependency_distance=200, intro_span=10)


@pytest.fixture(scope="session")
def small_synthetic():
    """``{split: MovieDataset}`` of a few short synthetic movies."""
    return {s: load_dataset("synthetic", s, **SMALL_SYNTHETIC) for s in ("train", "val", "test")}


#: accounts that may own a throwaway PostgreSQL server when the tests run as root (initdb refuses root)
POSTGRES_ACCOUNTS = ("postgres", "nobody")


def postgres_bin() -> Optional[Path]:
    """The directory of PostgreSQL's server programs (``initdb``, ``pg_ctl``, ``createdb``): where ``initdb`` on
    ``PATH`` points, else the newest ``/usr/lib/postgresql/<version>/bin`` (Debian/Ubuntu keep them off ``PATH``);
    ``None`` when there is none."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += sorted((Path(d) for d in glob.glob("/usr/lib/postgresql/*/bin")),
                         key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0, reverse=True)
    for directory in candidates:
        if all((directory / name).is_file() for name in ("initdb", "pg_ctl", "createdb")):
            return directory
    return None


class PostgresServer:
    """A PostgreSQL server of the tests' own: a fresh cluster (trust authentication, superuser ``postgres``, no
    fsync) listening only on a Unix socket in its directory, stopped and deleted by :meth:`stop`.

    The directory is a short one under ``/tmp``, not pytest's: a socket path is limited to about 100 bytes, and
    when the tests run as root the server runs as another account (``initdb`` refuses root), which cannot enter
    root's private pytest directory.

    :param bin_dir: where ``initdb``, ``pg_ctl`` and ``createdb`` are (:func:`postgres_bin`)
    :param account: the account that owns and runs the server, ``None`` for the current one
    """

    def __init__(self, bin_dir: Path, account: Optional[pwd.struct_passwd]) -> None:
        self.bin_dir, self.account = bin_dir, account
        self.dir = Path(tempfile.mkdtemp(prefix="pgtest-", dir="/tmp" if os.path.isdir("/tmp") else None))
        if account is not None:
            os.chown(self.dir, account.pw_uid, account.pw_gid)
        self.data, self.log = self.dir / "data", self.dir / "server.log"
        self._names = itertools.count()
        try:
            self.run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C",
                     "--no-sync")
            self.run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log),
                     "-o", f"-k {self.dir} -c listen_addresses='' -c fsync=off -c full_page_writes=off")
        except BaseException:
            self.stop()
            raise

    def run(self, program: str, *args: str) -> None:
        """Run one of the server's programs as the server's account; a failure raises with its output and the
        server log (the reason a server did not start is only there)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # no PGHOST/PGPORT of the machine's
        user = {} if self.account is None else dict(user=self.account.pw_uid, group=self.account.pw_gid,
                                                     extra_groups=[])
        done = subprocess.run([str(self.bin_dir / program), *args], cwd=self.dir, env=env, capture_output=True,
                              text=True, timeout=120, **user)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.is_file() else ""
            raise RuntimeError(f"{program} {' '.join(args)} exited with {done.returncode}:\n{done.stdout}"
                               f"{done.stderr}{log}")

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL, as a user would write it (``postgresql://``, no
        driver named), with the socket directory as ``host``."""
        name = f"test{next(self._names)}"
        self.run("createdb", "-h", str(self.dir), "-U", "postgres", name)
        return f"postgresql://postgres@/{name}?host={self.dir}"

    def stop(self) -> None:
        """Stop the server at once (its data is thrown away) and delete its directory."""
        try:
            if (self.data / "postmaster.pid").exists():
                self.run("pg_ctl", "stop", "-w", "-D", str(self.data), "-m", "immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _server_account() -> Optional[pwd.struct_passwd]:
    """``None`` (the current account) unless the tests run as root: then the first of :data:`POSTGRES_ACCOUNTS`
    that exists; skips the test when there is none."""
    if os.geteuid() != 0:
        return None
    for name in POSTGRES_ACCOUNTS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip(f"running as root, and initdb refuses root: no account {' or '.join(POSTGRES_ACCOUNTS)} to own a "
                "throwaway PostgreSQL server")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session (about a second to start); skipped where PostgreSQL's
    server programs are not installed."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server programs (initdb, pg_ctl) not found on PATH or in "
                    "/usr/lib/postgresql/*/bin: apt-get install postgresql to run the database tests")
    server = PostgresServer(bin_dir, _server_account())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The SQLAlchemy URL of a new, empty database of the throwaway server: each test starts from nothing."""
    return postgres_server.create_database()
