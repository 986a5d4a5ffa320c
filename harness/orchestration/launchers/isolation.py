"""What keeps a worker process in bounds without watching it.

Nothing of bakeoff's may run beside a timed loop, so the launcher does not
poll its worker: the kernel enforces the limits and tells us afterwards.

* **Memory**: a cgroup v2 child with ``memory.max``, where the launcher's own
  cgroup delegates the memory controller (``memory`` in its
  ``cgroup.subtree_control``); the kernel then OOM-kills the worker at the
  limit and counts it in the child's ``memory.events``. Elsewhere the worker
  sets ``RLIMIT_DATA`` on itself before loading any runtime: an allocation
  beyond it fails (Python's ``MemoryError``, torch's "can't allocate memory",
  C++'s ``std::bad_alloc``), which is recognised as ``out-of-memory``.
  ``RLIMIT_DATA`` counts private writable address space, which is at least
  the resident memory (thread stacks and untouched allocations count too), so
  a worker may stop a little before its resident set reaches the limit.
* **Parent death**: the worker never outlives the process that launched it.
  It asks the kernel for ``SIGTERM`` when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``, Linux) and, portably, blocks a thread on a
  pipe whose only write end its parent holds (end of file = the parent is
  gone). Either way it kills its whole process group, so a runtime's own
  helper processes die with it. Both cost nothing while the parent lives: a
  signal disposition and a thread asleep in ``read``.
* **Time**: the launcher's ``wait(timeout=...)`` blocks in the kernel.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

#: Environment of the worker: the launcher's pid, the read end of its lifeline pipe,
#: and where the memory limit is enforced.
PARENT_PID_ENV = "BAKEOFF_PARENT_PID"
LIFELINE_FD_ENV = "BAKEOFF_LIFELINE_FD"
CGROUP_ENV = "BAKEOFF_WORKER_CGROUP"

RLIMIT_MECHANISM = "RLIMIT_DATA"
CGROUP_MECHANISM = "cgroup v2 memory.max"

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
_PR_SET_PDEATHSIG = 1


# -- memory -------------------------------------------------------------------------

def cgroup2_mount(root: Path = CGROUP_ROOT) -> Path | None:
    """The cgroup v2 hierarchy: ``/sys/fs/cgroup`` (unified) or ``/sys/fs/cgroup/unified`` (hybrid)."""
    for candidate in (root, root / "unified"):
        if (candidate / "cgroup.controllers").exists():
            return candidate
    return None


def own_cgroup(proc_cgroup: Path = PROC_SELF_CGROUP) -> str | None:
    """This process's cgroup v2 path (the ``0::/path`` line)."""
    try:
        for line in proc_cgroup.read_text().splitlines():
            if line.startswith("0::"):
                return line[3:].strip() or "/"
    except OSError:
        pass
    return None


@dataclass
class MemoryCgroup:
    """A child cgroup for one worker, with ``memory.max`` set."""

    path: Path
    limit_bytes: int

    @classmethod
    def create(cls, limit_bytes: int, name: str, root: Path = CGROUP_ROOT,
               proc_cgroup: Path = PROC_SELF_CGROUP) -> tuple["MemoryCgroup | None", str]:
        """The cgroup, or ``None`` and why not (then the worker falls back to ``RLIMIT_DATA``)."""
        mount, own = cgroup2_mount(root), own_cgroup(proc_cgroup)
        if mount is None:
            return None, "no cgroup v2 hierarchy"
        if own is None:
            return None, "this process is in no cgroup v2 group"
        parent = mount / own.lstrip("/")
        try:
            delegated = (parent / "cgroup.subtree_control").read_text().split()
        except OSError as exc:
            return None, f"cannot read {parent / 'cgroup.subtree_control'} ({exc.strerror})"
        if "memory" not in delegated:
            return None, f"the memory controller is not delegated to {parent}"
        path = parent / name
        try:
            path.mkdir()
            (path / "memory.max").write_text(str(int(limit_bytes)))
            swap = path / "memory.swap.max"
            if swap.exists():
                swap.write_text("0")  # a limit that swaps instead of failing would distort timing silently
        except OSError as exc:
            cls(path, limit_bytes).remove()
            return None, f"cannot create {path} ({exc.strerror})"
        return cls(path, limit_bytes), "ok"

    def oom_kills(self) -> int:
        try:
            for line in (self.path / "memory.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def peak_bytes(self) -> int | None:
        try:
            return int((self.path / "memory.peak").read_text())
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        """``rmdir``: a cgroup's control files go with it. (Its worker has been killed and reaped.)"""
        try:
            self.path.rmdir()
        except OSError:
            # A plain folder standing in for cgroupfs (tests): empty it first.
            for leftover in self.path.glob("*"):
                try:
                    leftover.unlink()
                except OSError:
                    pass
            try:
                self.path.rmdir()
            except OSError:
                pass


def enter_cgroup(path: str) -> None:
    """Move this process into ``path`` (the worker does this first thing)."""
    with open(Path(path) / "cgroup.procs", "w", encoding="ascii") as fh:
        fh.write("0")  # "0" is the writing process itself


def limit_own_memory(limit_bytes: int) -> None:
    """``RLIMIT_DATA`` on this process; raises ``OSError``/``ValueError`` where it cannot be set."""
    import resource

    resource.setrlimit(resource.RLIMIT_DATA, (int(limit_bytes), int(limit_bytes)))


#: Text of an allocation failure in a worker's output (when a runtime aborts instead of raising).
OOM_MARKERS = ("std::bad_alloc", "cannot allocate memory", "can't allocate memory", "out of memory",
               "memoryerror")


def looks_like_oom(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in OOM_MARKERS)


# -- parent death ---------------------------------------------------------------------

def kill_own_group() -> None:
    """SIGKILL this process's group: the worker and every helper process it started."""
    try:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os._exit(137)


def die_with_parent(parent_pid: int | None, lifeline_fd: int | None) -> list[str]:
    """Make this worker die with its launcher. Returns the mechanisms in force."""
    mechanisms = []
    signal.signal(signal.SIGTERM, lambda *_: kill_own_group())
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0:
                mechanisms.append("PR_SET_PDEATHSIG")
        except (OSError, AttributeError):
            pass
    if lifeline_fd is not None:
        os.set_inheritable(lifeline_fd, False)  # the runtime's own children must not keep it open

        def watch() -> None:
            try:
                while os.read(lifeline_fd, 1):
                    pass
            except OSError:
                pass
            kill_own_group()

        threading.Thread(target=watch, name="bakeoff-lifeline", daemon=True).start()
        mechanisms.append("lifeline pipe")
    # The parent may have died before any of this was in place.
    if parent_pid is not None and os.getppid() != parent_pid:
        kill_own_group()
    return mechanisms
