"""Writing a render into the output directory (config/) as one transaction.

The output directory holds the files render.py wrote and MANIFEST, which lists them
with their SHA-256. A render into it:

1. locks the directory (flock on the directory itself): a second render waits;
2. completes, or rolls back, a swap that an interrupted render left (JOURNAL);
3. refuses the directory if it holds anything the manifest does not list (or, with no
   manifest yet, anything this render would not write): render.py never removes a file
   it did not write;
4. writes the new tree into STAGING (files 0644, directories 0755, whatever the umask)
   where the validators check it;
5. commits: hard-links every file it will replace or remove into STAGING/.previous, writes
   the journal (the commit point), then, with SIGINT, SIGTERM, SIGHUP and SIGQUIT held
   back, replaces each changed file with os.replace (directories stay: running
   containers bind-mount them), removes the files the new render no longer has, sets the
   modes, writes the manifest and deletes the journal and STAGING.

A swap cut short after the journal was written (SIGKILL, a crash, power loss) is
completed by the next run from the staging copy, or rolled back from .previous when that
copy is incomplete; `render.py --check` reports it meanwhile.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import stat
import sys
import time
from pathlib import Path
from typing import Callable

from .errors import InputError, UsageError
from .values import display

MANIFEST = ".render-manifest"
JOURNAL = ".render-journal"
STAGING = ".render-staging"
PREVIOUS = ".previous"
RESERVED = (MANIFEST, JOURNAL, JOURNAL + ".new", STAGING)
FILE_MODE = 0o644
DIR_MODE = 0o755
# Signals held back while the swap runs; delivered once it is complete.
DEFERRED = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT}
LOCK_WAIT_SECONDS = 60
MAX_LISTED = 10

MANIFEST_HEADER = (
    "# Written by render.py: every file it wrote in this directory, with its SHA-256.\n"
    "# render.py removes only files listed here, and refuses a directory holding anything\n"
    "# else. Do not edit.\n"
)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_text(files: dict[str, bytes]) -> str:
    return MANIFEST_HEADER + "".join(f"{digest(data)}  {name}\n" for name, data in sorted(files.items()))


def valid_name(name: str) -> bool:
    """A path render.py may write: relative, no empty, hidden, . or .. parts."""
    parts = name.split("/")
    return bool(name) and all(part and not part.startswith(".") and "\0" not in part for part in parts)


def parse_manifest(text: str, where: str) -> dict[str, str]:
    out = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        sha, sep, name = line.partition("  ")
        if not sep or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha) or not valid_name(name):
            raise InputError([f"{where}:{number}: damaged manifest line; render.py cannot tell which files it "
                              f"wrote: restore the file (git checkout) or empty the directory"])
        out[name] = sha
    return out


def file_digest(path: Path) -> str | None:
    """SHA-256 of a regular file (not following a symlink), None when there is none."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        return digest(path.read_bytes())
    except OSError:
        return None


def swap_order(item: tuple[str, str]) -> tuple:
    """Files that others refer to go in first: Grafana's provisioning (the datasource uids
    dashboards use) before the dashboards, and deeper files (rule files, notification
    templates) before the files at the top that load them (prometheus.yml,
    alertmanager.yml, compose.env)."""
    name = item[0]
    return ("/provisioning/" not in name, -name.count("/"), name)


def ancestors(names) -> set[str]:
    out = set()
    for name in names:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/".join(parts[:i]))
    return out


def problem(error: OSError, path: Path) -> str:
    return f"{display(path)}: {error.strerror or error}"


# --------------------------------------------------------------------------- writing


def write_file(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Create `path` (which must not exist) with `data` and exactly `mode`, on disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(root: Path, relative: str) -> None:
    """root/relative and the directories between, each 0755."""
    path = root
    for part in [p for p in relative.split("/") if p]:
        path = path / part
        if not path.is_dir() or path.is_symlink():
            os.mkdir(path, DIR_MODE)
        if stat.S_IMODE(path.lstat().st_mode) != DIR_MODE:
            os.chmod(path, DIR_MODE)


def write_tree(files: dict[str, str], target: Path) -> None:
    """Write each file under `target` (0644, directories 0755)."""
    target.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        make_dirs(target, os.path.dirname(name))
        out = target / name
        if out.exists():
            out.unlink()
        write_file(out, text.encode("utf-8"))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


# --------------------------------------------------------------------------- what is there


def entries(root: Path, owned_files: set[str]) -> tuple[list[str], list[str]]:
    """(foreign entries, directory entries) under root: a foreign entry is anything that
    is neither an owned file, nor a directory holding one, nor a reserved name; symbolic
    links and special files always are. Foreign directories are not descended into."""
    owned_dirs = ancestors(owned_files)
    foreign, dirs = [], []

    def walk(directory: Path, prefix: str) -> None:
        with os.scandir(directory) as scan:
            found = sorted(scan, key=lambda e: e.name)
        for entry in found:
            name = prefix + entry.name
            if not prefix and entry.name in RESERVED:
                continue
            if entry.is_symlink():
                foreign.append(f"{name}: a symbolic link")
            elif entry.is_dir():
                if name in owned_dirs:
                    dirs.append(name)
                    walk(Path(entry.path), name + "/")
                else:
                    foreign.append(f"{name}/")
            elif entry.is_file():
                if name not in owned_files:
                    foreign.append(name)
            else:
                foreign.append(f"{name}: not a regular file")

    walk(root, "")
    return foreign, dirs


# --------------------------------------------------------------------------- the transaction


class Interrupted(BaseException):
    """A signal asked render.py to stop; raised from the signal handler."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_interrupted(signum: int, _frame) -> None:
    raise Interrupted(signum)


def install_signal_handlers() -> dict:
    """Make SIGINT, SIGTERM, SIGHUP and SIGQUIT raise Interrupted; returns the handlers
    they had, for restore_signal_handlers."""
    return {signum: signal.signal(signum, raise_interrupted) for signum in DEFERRED}


def restore_signal_handlers(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


class Transaction:
    """with Transaction(output) as tx: tx.stage(files); validate(tx.staging); tx.commit()"""

    def __init__(self, output: Path):
        self.output = output
        self.name = display(output)
        self.staging = output / STAGING
        self.fd: int | None = None
        self.created = False
        self.committed = False
        self.old: dict[str, str] | None = None
        self.new: dict[str, str] = {}

    # ---------------------------------------------------------------- enter / exit

    def __enter__(self) -> "Transaction":
        self.open()
        try:
            self.lock()
            self.recover()
            self.old = self.read_manifest()
            remove_tree(self.staging)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if not self.committed:
                remove_tree(self.staging)
                if self.created and not any(self.output.iterdir()):
                    self.output.rmdir()
        except OSError:
            pass
        finally:
            self.close()

    def open(self) -> None:
        if self.output.exists() and not self.output.is_dir():
            raise UsageError([f"{self.name}: --output must be a directory; this is a file"])
        blocker = next((p for p in self.output.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise UsageError([f"{display(blocker)}: not a directory, so --output {self.name} cannot be created"])
        try:
            if not self.output.exists():
                self.output.parent.mkdir(parents=True, exist_ok=True)
                os.mkdir(self.output, DIR_MODE)
                self.created = True
            self.fd = os.open(self.output, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as error:
            raise InputError([f"{problem(error, self.output)}; cannot write the output there"]) from None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
            self.fd = None

    def lock(self) -> None:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        told = False
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if not told:
                    print(f"render.py: another render.py is writing {self.name}; waiting for it "
                          f"(at most {LOCK_WAIT_SECONDS}s)", file=sys.stderr)
                    told = True
                if time.monotonic() > deadline:
                    raise InputError([f"{self.name}: another render.py kept it locked for "
                                      f"{LOCK_WAIT_SECONDS}s; run again once it has finished"]) from None
                time.sleep(0.1)

    def read_manifest(self) -> dict[str, str] | None:
        path = self.output / MANIFEST
        if not path.exists():
            return None
        try:
            return parse_manifest(path.read_text(encoding="utf-8"), display(path))
        except (OSError, UnicodeDecodeError) as error:
            raise InputError([f"{display(path)}: cannot read the manifest ({error})"]) from None

    # ---------------------------------------------------------------- interrupted swaps

    def recover(self) -> None:
        """Complete or roll back the swap an interrupted render left behind."""
        leftover = self.output / (JOURNAL + ".new")
        if leftover.exists():
            leftover.unlink()
        path = self.output / JOURNAL
        if not path.exists():
            return
        try:
            journal = json.loads(path.read_text(encoding="utf-8"))
            old, new = journal["old"], journal["new"]
            if not (all(map(valid_name, new)) and all(map(valid_name, old or {}))):
                raise ValueError("bad name")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InputError([f"{display(path)}: an interrupted render left this journal and it is unreadable "
                              f"({error}); check the directory, then delete the journal"]) from None
        with deferred_signals():
            if self.roll_forward(old, new):
                what = "completed"
            else:
                self.roll_back(old, new)
                what = "rolled back (its staging copy was incomplete)"
            self.finish()
        print(f"render.py: {self.name}: a render had been interrupted in the middle of replacing files; "
              f"its swap is now {what}", file=sys.stderr)

    def roll_forward(self, old: dict | None, new: dict[str, str]) -> bool:
        """Put every file of `new` in place from the staging copy; False (nothing done)
        when a file is neither in place nor in the staging copy."""
        staged = self.staging
        if any(file_digest(self.output / n) != d and file_digest(staged / n) != d for n, d in new.items()):
            return False
        for name, sha in sorted(new.items(), key=swap_order):
            target = self.output / name
            if file_digest(target) != sha:
                make_dirs(self.output, os.path.dirname(name))
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                os.replace(staged / name, target)
            elif stat.S_IMODE(target.lstat().st_mode) != FILE_MODE:
                os.chmod(target, FILE_MODE)
        for name in sorted(set(old or {}) - set(new)):
            (self.output / name).unlink(missing_ok=True)
        self.tidy_dirs(set(old or {}) - set(new), new)
        manifest = staged / MANIFEST
        if manifest.exists():
            os.replace(manifest, self.output / MANIFEST)
        else:
            self.write_manifest_file(new)
        return True

    def write_manifest_file(self, new: dict[str, str]) -> None:
        text = MANIFEST_HEADER + "".join(f"{sha}  {name}\n" for name, sha in sorted(new.items()))
        tmp = self.output / (JOURNAL + ".new")
        tmp.unlink(missing_ok=True)
        write_file(tmp, text.encode("utf-8"))
        os.replace(tmp, self.output / MANIFEST)

    def roll_back(self, old: dict | None, new: dict[str, str]) -> None:
        """Put back what the interrupted render had replaced or removed (from .previous)
        and remove what it had added."""
        previous = self.staging / PREVIOUS
        for name in sorted(set(new) | set(old or {})):
            saved, target = previous / name, self.output / name
            if saved.exists():
                make_dirs(self.output, os.path.dirname(name))
                os.replace(saved, target)
            elif name not in (old or {}):
                target.unlink(missing_ok=True)
        saved = previous / MANIFEST
        if saved.exists():
            os.replace(saved, self.output / MANIFEST)
        elif old is None:
            (self.output / MANIFEST).unlink(missing_ok=True)
        self.tidy_dirs(set(new) - set(old or {}), old or {})

    def tidy_dirs(self, gone: set[str], kept) -> None:
        """Remove the directories that held only files now gone."""
        keep = ancestors(kept)
        for directory in sorted(ancestors(gone) - keep, key=lambda d: -d.count("/")):
            path = self.output / directory
            try:
                if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
                    path.rmdir()
            except OSError:
                pass

    def finish(self) -> None:
        """The swap is whole: set the modes, drop the journal and the staging copy."""
        names = parse_manifest((self.output / MANIFEST).read_text(encoding="utf-8"), MANIFEST) \
            if (self.output / MANIFEST).exists() else {}
        for directory in ["", *sorted(ancestors(names))]:
            path = self.output / directory
            if path.is_dir() and stat.S_IMODE(path.lstat().st_mode) != DIR_MODE:
                os.chmod(path, DIR_MODE)
        for name in names:
            path = self.output / name
            if path.exists() and stat.S_IMODE(path.lstat().st_mode) != FILE_MODE:
                os.chmod(path, FILE_MODE)
        if (self.output / MANIFEST).exists():
            os.chmod(self.output / MANIFEST, FILE_MODE)
        fsync_dir(self.output)
        (self.output / JOURNAL).unlink(missing_ok=True)
        fsync_dir(self.output)
        remove_tree(self.staging)

    # ---------------------------------------------------------------- a render

    def check_ownership(self, names: set[str]) -> None:
        """Refuse a directory holding anything render.py did not write."""
        owned = set(self.old) if self.old is not None else set(names)
        foreign, _ = entries(self.output, owned)
        if foreign:
            why = (f"not in {MANIFEST}, the list of what render.py wrote here" if self.old is not None
                   else f"not written by render.py (there is no {MANIFEST} here)")
            lines = [f"{self.name}/{entry}: {why}; render.py writes only into an empty directory or one it "
                     f"rendered before, and removes nothing else: move it away" for entry in foreign[:MAX_LISTED]]
            if len(foreign) > MAX_LISTED:
                lines.append(f"{self.name}: ... and {len(foreign) - MAX_LISTED} more such entries")
            raise InputError(lines)

    def stage(self, files: dict[str, str]) -> Path:
        """Write the new tree (and its manifest) into the staging directory."""
        data = {name: text.encode("utf-8") for name, text in files.items()}
        bad = [name for name in data if not valid_name(name)]
        if bad:
            raise ValueError(f"render produced invalid file names: {bad}")
        self.check_ownership(set(data))
        self.new = {name: digest(blob) for name, blob in data.items()}
        try:
            os.mkdir(self.staging, DIR_MODE)
            for name, blob in sorted(data.items()):
                make_dirs(self.staging, os.path.dirname(name))
                write_file(self.staging / name, blob)
            write_file(self.staging / MANIFEST, manifest_text(data).encode("utf-8"))
        except OSError as error:
            raise InputError([f"{problem(error, Path(error.filename or self.staging))}; "
                              f"{self.name} was left as it was"]) from None
        return self.staging

    def commit(self, after: Callable[[], None] | None = None) -> None:
        """Swap the staged tree in (see the module docstring); `after` runs in the same
        window where signals are held back, once the swap is complete."""
        old = self.old
        previous = self.staging / PREVIOUS
        try:
            os.mkdir(previous, DIR_MODE)
            for name in sorted(set(old or {}) | set(self.new) | {MANIFEST}):
                current = self.output / name
                if current.is_file() and not current.is_symlink():
                    make_dirs(previous, os.path.dirname(name))
                    os.link(current, previous / name)
            fsync_dir(self.staging)
        except OSError as error:
            raise InputError([f"{problem(error, Path(error.filename or previous))}; "
                              f"{self.name} was left as it was"]) from None
        with deferred_signals():
            journal = self.output / JOURNAL
            tmp = self.output / (JOURNAL + ".new")
            write_file(tmp, json.dumps({"version": 1, "old": old, "new": self.new}, indent=1).encode("utf-8"))
            os.replace(tmp, journal)
            fsync_dir(self.output)
            try:
                self.roll_forward(old, self.new)
                self.finish()
            except OSError as error:
                line = f"{problem(error, Path(error.filename or self.output))}; "
                try:
                    self.roll_back(old, self.new)
                    self.finish()
                except OSError as again:
                    raise InputError([line + f"rolling back failed too ({again.strerror}); the next "
                                             f"render.py run completes or rolls back the swap"]) from None
                raise InputError([line + f"{self.name} was rolled back to what it held before"]) from None
            self.committed = True
            if after:
                after()


class deferred_signals:
    """Hold SIGINT, SIGTERM, SIGHUP and SIGQUIT back until the block ends."""

    def __enter__(self):
        self.mask = signal.pthread_sigmask(signal.SIG_BLOCK, DEFERRED)

    def __exit__(self, *exc):
        signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)


# --------------------------------------------------------------------------- --check


def differences(files: dict[str, str], output: Path) -> list[str]:
    """What makes `output` differ from a fresh render of `files` (content, missing or
    extra files, modes, an interrupted swap), one line each, naming `output`."""
    base = display(output)
    expected = {name: text.encode("utf-8") for name, text in files.items()}
    expected[MANIFEST] = manifest_text(expected).encode("utf-8")
    if not output.is_dir():
        return [f"{base}/{name}: missing" for name in sorted(expected)]
    out = []
    if (output / JOURNAL).exists():
        out.append(f"{base}/{JOURNAL}: a render was interrupted while it replaced files, so this directory is "
                   f"half old, half new; the next `make render` completes or rolls back that swap")
    elif (output / STAGING).exists():
        out.append(f"{base}/{STAGING}: left by an interrupted render; the next `make render` removes it")
    foreign, dirs = entries(output, set(expected))
    out += [f"{base}/{entry}: not produced by the templates" for entry in foreign]
    for name, data in sorted(expected.items()):
        path = output / name
        if not path.exists() and not path.is_symlink():
            out.append(f"{base}/{name}: missing")
            continue
        if path.is_symlink() or not path.is_file():
            continue  # reported as not produced above
        if path.read_bytes() != data:
            out.append(f"{base}/{name}: differs from a fresh render")
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode != FILE_MODE:
            why = ("a service that runs as another user cannot read it" if not mode & stat.S_IROTH
                   else "a fresh render writes 0644")
            out.append(f"{base}/{name}: mode {mode:04o}: {why}")
    for directory in ["", *dirs]:
        mode = stat.S_IMODE((output / directory).lstat().st_mode)
        if mode != DIR_MODE:
            why = ("a service that runs as another user cannot read the files in it"
                   if (mode & 0o005) != 0o005 else "a fresh render makes 0755")
            out.append(f"{base}/{directory + '/' if directory else ''}: mode {mode:04o}: {why}")
    return out


class shared_lock:
    """Wait while a render writes `output` (for --check, which only reads)."""

    def __init__(self, output: Path):
        self.output = output
        self.fd = None

    def __enter__(self):
        if self.output.is_dir():
            self.fd = os.open(self.output, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            deadline = time.monotonic() + LOCK_WAIT_SECONDS
            while True:
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise InputError([f"{display(self.output)}: another render.py kept it locked for "
                                          f"{LOCK_WAIT_SECONDS}s; run again once it has finished"]) from None
                    time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)


def render_tree(values: dict, target: Path) -> Path:
    """Every file of the values written into `target` (no validators, no .env): what
    the tests inspect."""
    from .build import files

    write_tree(files(values), target)
    return target
