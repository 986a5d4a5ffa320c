"""The results store: one folder per run, one JSON file per benchmark.

Layout of ``results/<run-id>/``::

    run.json               the manifest: who, when, where, with what
    records/<key>.json     one record per benchmark, written when it finishes

Every file is written atomically (temporary file, fsync, rename, fsync of the
folder: harness/files/atomic.py), so an interrupted run leaves only complete files
and nothing already measured is lost. Records keep every raw latency, not only
summaries.

Schema history (``SCHEMA_VERSION``; bump it and add a line for every change to
a file's shape, and teach :func:`_upgrade` to read the old one):

* 1 - first version: manifest ``kind = "bakeoff.run"``, record
  ``kind = "bakeoff.record"``.

Files are read with ``json`` only. Nothing a user hands us is unpickled or
evaluated.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.contract.errors import ResultsError
from harness.engine.runner import Outcome, utc_now
from harness.engine.spec import BenchmarkSpec
from harness.files.atomic import atomic_write_json
from harness.results.derive import derive
from harness.results.record import RECORD_KIND, SCHEMA_VERSION, Record, RecordError

RUN_KIND = "bakeoff.run"
MANIFEST_NAME = "run.json"
RECORDS_DIR = "records"
#: Held (flock) by the driver of a run and inherited by its workers: while any of them
#: lives, the run is in use and ``--resume`` refuses.
LOCK_NAME = ".lock"
DEFAULT_RESULTS_DIR = Path("results")


# -- writing ---------------------------------------------------------------

def new_run_id(now: datetime | None = None) -> str:
    """``YYYYMMDD-HHMMSS-xxxx``: sorts by time, unique across hosts."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def build_record(run_id: str, spec: BenchmarkSpec, outcome: Outcome) -> dict[str, Any]:
    """The JSON form of one benchmark's record: identity, raw measurement, and every figure
    derived from them (harness/results/record.py, :func:`~harness.results.record.derive`)."""
    return derive(run_id, spec.key(), spec.to_dict(), outcome.to_dict()).to_json()


class RunStore:
    """A run folder being written. Create with :meth:`create`, then write records."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.lock_fd: int | None = None

    def lock(self, wait_s: float = 0.0) -> int:
        """Take the run's lock, or raise :class:`ResultsError` naming the live process holding it.

        An exclusive ``flock`` on ``.lock``: the kernel drops it when the last
        process holding the descriptor dies, so it is never stale. Workers
        inherit it (``Launcher.launch(keep_alive=...)``), so an orphaned worker
        of a killed driver still holds the run.
        """
        if self.lock_fd is not None:
            return self.lock_fd
        import fcntl
        import time

        path = self.path / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() < deadline:  # a killed driver's worker takes a moment to die
                    time.sleep(0.05)
                    continue
            os.close(fd)
            raise ResultsError(f"{self.path}: run {self.run_id} is still in use by "
                               f"{_lock_holders(path)}; wait for it to finish or stop it, then resume") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "started_at": utc_now()}).encode())
        self.lock_fd = fd
        return fd

    def unlock(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    @property
    def run_id(self) -> str:
        return self.manifest["run_id"]

    @classmethod
    def create(
        cls,
        root: Path | str = DEFAULT_RESULTS_DIR,
        *,
        settings: Mapping[str, Any] | None = None,
        plan: Iterable[BenchmarkSpec] = (),
        devices: Iterable[Mapping[str, Any]] = (),
        command: list[str] | None = None,
        run_id: str | None = None,
    ) -> "RunStore":
        from harness import __version__
        from harness.engine.telemetry.environment import collect_host, git_commit

        run_id = run_id or new_run_id()
        path = Path(root) / run_id
        (path / RECORDS_DIR).mkdir(parents=True, exist_ok=False)
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "kind": RUN_KIND,
            "run_id": run_id,
            "status": "running",
            "started_at": utc_now(),
            "finished_at": None,
            "command": list(command if command is not None else sys.argv),
            "bakeoff_version": __version__,
            "git": git_commit(),
            "host": collect_host(),
            # Separate collector: every device the run uses, as its backend reports it.
            "devices": [dict(d) for d in devices],
            "settings": dict(settings or {}),
            # Every planned benchmark, so `--resume` can run exactly what is missing.
            "plan": [spec.to_dict() for spec in plan],
            "resumed_at": [],
        }
        store = cls(path, manifest)
        atomic_write_json(path / MANIFEST_NAME, manifest)
        store.lock()
        return store

    @classmethod
    def open(cls, run_dir: Path | str) -> "RunStore":
        """Re-open an existing run folder (to resume it)."""
        run_dir = Path(run_dir)
        return cls(run_dir, read_manifest(run_dir))

    def planned_specs(self) -> list[BenchmarkSpec]:
        try:
            return [BenchmarkSpec.from_dict(data) for data in self.manifest.get("plan", [])]
        except (TypeError, ValueError, KeyError) as exc:
            raise ResultsError(f"{self.path / MANIFEST_NAME}: unreadable plan ({exc})") from None

    def add_planned(self, specs: Iterable[BenchmarkSpec]) -> None:
        """Append benchmarks decided while the run goes (an auto sweep's next load point) to its
        plan, so ``--resume`` knows them."""
        self.manifest.setdefault("plan", []).extend(spec.to_dict() for spec in specs)
        atomic_write_json(self.path / MANIFEST_NAME, self.manifest)

    def completed_keys(self) -> set[str]:
        """Keys of records that exist and read back cleanly."""
        done = set()
        for path in (self.path / RECORDS_DIR).glob("*.json"):
            if path.name.startswith("."):
                continue
            try:
                done.add(_read_json(path, RECORD_KIND)["key"])
            except (ResultsError, KeyError):
                continue  # unreadable: run it again and overwrite
        return done

    def remove_stale_temporaries(self) -> int:
        """Delete temporary files a killed writer left behind; returns how many."""
        stale = [p for p in self.path.rglob(".*.tmp")]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    def mark_resumed(self) -> None:
        self.manifest["status"] = "running"
        self.manifest["finished_at"] = None
        self.manifest.setdefault("resumed_at", []).append(utc_now())
        atomic_write_json(self.path / MANIFEST_NAME, self.manifest)

    def record_path(self, spec: BenchmarkSpec) -> Path:
        return self.path / RECORDS_DIR / f"{spec.key()}.json"

    def write(self, spec: BenchmarkSpec, outcome: Outcome) -> dict[str, Any]:
        from harness.engine.telemetry.fingerprint import fingerprint, fingerprint_inputs

        record = build_record(self.run_id, spec, outcome)
        # A fleet node's own environment, else the run's host: each record keeps its own.
        host = outcome.node or self.manifest.get("host") or {}
        record["host"] = host.get("hostname")
        record["fingerprint_inputs"] = fingerprint_inputs(host, record)
        record["fingerprint"] = fingerprint(record["fingerprint_inputs"])
        atomic_write_json(self.record_path(spec), record)
        return record

    def finish(self, status: str = "complete") -> None:
        self.manifest.update(status=status, finished_at=utc_now())
        atomic_write_json(self.path / MANIFEST_NAME, self.manifest)
        self.unlock()


def _lock_holders(lock_path: Path) -> str:
    """Who holds a run's lock: the live processes with the file open, named by pid and role."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a core dependency
        return "a live process"
    holders = []
    target = str(lock_path.resolve())
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(f.path == target for f in process.open_files()):
                cmdline = process.info["cmdline"] or []
                role = "worker" if "harness.orchestration.worker" in cmdline else "driver"
                holders.append(f"{role} pid {process.info['pid']}")
        except psutil.Error:
            continue
    return ", ".join(holders) or "another process"


# -- reading ---------------------------------------------------------------

def _read_json(path: Path, kind: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(
            f"{path}: corrupt results file, not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(data, dict) or data.get("kind") != kind:
        found = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise ResultsError(f"{path}: not a bakeoff {kind.split('.')[-1]} file (kind={found!r}, expected {kind!r})")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultsError(f"{path}: schema_version must be an integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise ResultsError(
            f"{path}: written with schema_version {version}, this bakeoff reads up to "
            f"{SCHEMA_VERSION}; upgrade bakeoff"
        )
    if version < 1:
        raise ResultsError(f"{path}: schema_version {version} is not valid (must be >= 1)")
    return _upgrade(data, path)


def _upgrade(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Bring an older file up to ``SCHEMA_VERSION``. (Version 1 is the first.) A record is read
    through its typed form (harness/results/record.py), so a wrong shape is one line naming the key."""
    if data["kind"] == RECORD_KIND:
        for key in ("spec", "status"):
            if key not in data:
                raise ResultsError(f"{path}: record is missing the required key {key!r}")
        try:  # the shape is checked on the way in; the JSON (upgraded) is what readers get
            return Record.check(data, str(path))
        except RecordError as exc:
            raise ResultsError(str(exc)) from None
    return data


def read_manifest(run_dir: Path) -> dict[str, Any]:
    return _read_json(Path(run_dir) / MANIFEST_NAME, RUN_KIND)


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    """All records of a run, sorted by start time (temporary files are skipped)."""
    records_dir = Path(run_dir) / RECORDS_DIR
    files = sorted(p for p in records_dir.glob("*.json") if not p.name.startswith("."))
    records = [_read_json(p, RECORD_KIND) for p in files]
    return sorted(records, key=lambda r: (r.get("started_at") or "", r["key"]))


def _expand(path: Path) -> list[tuple[Path, Path | None]]:
    """Map a user path to (record file, run folder) pairs. Accepts a record file,
    a run folder, or a folder of run folders such as ``results/``."""
    if path.is_file():
        return [(path, path.parent.parent if path.parent.name == RECORDS_DIR else None)]
    if not path.exists():
        raise ResultsError(f"{path}: no such file or folder")
    if (path / MANIFEST_NAME).exists():
        read_manifest(path)  # validates the manifest early, naming it on error
        files = sorted(p for p in (path / RECORDS_DIR).glob("*.json") if not p.name.startswith("."))
        return [(f, path) for f in files]
    runs = sorted(p for p in path.iterdir() if (p / MANIFEST_NAME).exists())
    if not runs:
        raise ResultsError(f"{path}: not a bakeoff run folder (no {MANIFEST_NAME}) and holds no runs")
    return [pair for run in runs for pair in _expand(run)]


def resolve_run(run: str, results_dir: Path | str = DEFAULT_RESULTS_DIR) -> Path:
    """A run folder from a path or a run id under ``results_dir``; ``latest`` works too.

    Its manifest is validated too (:func:`read_manifest`), so every command that
    takes a run (show, compare, export, report, rank, plan, run --resume) fails
    on a corrupt, foreign or too-new ``run.json`` with one line naming it.
    """
    run_dir = _find_run(run, results_dir)
    read_manifest(run_dir)
    return run_dir


def _find_run(run: str, results_dir: Path | str) -> Path:
    candidate = Path(run)
    if (candidate / MANIFEST_NAME).exists():
        return candidate
    root = Path(results_dir)
    if run == "latest":
        runs = sorted(p for p in root.glob("*") if (p / MANIFEST_NAME).exists()) if root.exists() else []
        if not runs:
            raise ResultsError(f"{root}: holds no runs yet")
        return runs[-1]
    if (root / run / MANIFEST_NAME).exists():
        return root / run
    # A run-id prefix is a plain name; a path (absolute, or with separators or glob characters) is not one.
    is_prefix = bool(run) and not any(ch in run for ch in "/\\*?[]") and not candidate.is_absolute()
    matches = (sorted(p for p in root.glob(f"{run}*") if (p / MANIFEST_NAME).exists())
               if root.exists() and is_prefix else [])
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ResultsError(f"run {run!r} is ambiguous in {root}: {', '.join(m.name for m in matches)}")
    raise ResultsError(f"no run {run!r} (looked for a run folder at {candidate} and under {root})")

