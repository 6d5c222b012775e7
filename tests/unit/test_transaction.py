"""render.py writes its output as a transaction: it removes only what its manifest says it
wrote, locks the directory, defers signals during the swap, completes or rolls back a
swap cut short, leaves no temporary directory, and writes explicit modes."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

import bundle.output
from inprocess import contents, render, rendered_copy, snapshot

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LEFTOVERS = (".render-staging", ".render-journal", ".render-journal.new")


def no_leftovers(work: Path) -> None:
    """Nothing temporary left in the output or beside it."""
    config = work / "config"
    assert not [n for n in LEFTOVERS if (config / n).exists()], os.listdir(config)
    assert not [p.name for p in work.iterdir() if p.name.startswith(".config") or p.name.startswith("render-")]


@pytest.fixture
def rendered(tmp_path):
    """A render of the defaults in tmp_path/config."""
    return rendered_copy(tmp_path)


# --------------------------------------------------------------------------- --output


def test_a_directory_without_a_manifest_is_refused_and_nothing_is_touched(tmp_path):
    clone = tmp_path / "clone"
    (clone / ".git").mkdir(parents=True)
    for name in ("render.py", "values.yaml", ".env", "README.md"):
        (clone / name).write_text(f"{name}\n")
    before = snapshot(clone)
    result = render(tmp_path, output=clone)
    assert result.code == 1
    assert "Traceback" not in result.stderr
    assert len(result.problems) == 5
    assert all("not written by render.py" in line for line in result.problems), result.problems
    assert any(line.startswith(f"{clone}/.git/") or "/.git/:" in line for line in result.problems)
    assert snapshot(clone) == before


def test_a_file_the_manifest_does_not_list_is_refused_and_kept(rendered):
    config = rendered / "config"
    mine = config / "prometheus" / "rules" / "mine.yml"
    mine.write_text("groups: []\n")
    before = snapshot(config)
    result = render(rendered, {"prometheus": {"scrape_interval": "30s"}})
    assert result.code == 1
    assert len(result.problems) == 1
    assert "prometheus/rules/mine.yml: not in .render-manifest" in result.problems[0]
    assert snapshot(config) == before
    no_leftovers(rendered)


def test_the_manifest_lists_every_file_with_its_sha256(rendered):
    import hashlib

    config = rendered / "config"
    listed = {}
    for line in (config / ".render-manifest").read_text().splitlines():
        if line and not line.startswith("#"):
            sha, name = line.split("  ", 1)
            listed[name] = sha
    files = {name: data for name, data in contents(config).items() if name != ".render-manifest"}
    assert listed == {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def test_a_manifest_naming_paths_outside_the_directory_is_refused(rendered, tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me\n")
    manifest = rendered / "config" / ".render-manifest"
    manifest.write_text(manifest.read_text() + f"{'0' * 64}  ../precious.txt\n")
    result = render(rendered, {"layers": {"tracing": False}})
    assert result.code == 1
    assert ".render-manifest:" in result.problems[0] and "damaged manifest line" in result.problems[0]
    assert outside.read_text() == "keep me\n"


def test_a_symlink_inside_the_output_is_refused(rendered, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = rendered / "config"
    for path in (config / "jaeger").iterdir():
        path.unlink()
    (config / "jaeger").rmdir()
    (config / "jaeger").symlink_to(elsewhere)
    result = render(rendered)
    assert result.code == 1
    assert "jaeger: a symbolic link" in result.stderr
    assert list(elsewhere.iterdir()) == []


def test_a_directory_holding_only_what_this_render_writes_is_adopted(rendered):
    """A render of an older render.py had no manifest: its files are this render's."""
    config = rendered / "config"
    (config / ".render-manifest").unlink()
    result = render(rendered)
    assert result.code == 0, result.stderr
    assert (config / ".render-manifest").exists()


def test_output_naming_a_file_is_a_usage_error(tmp_path):
    target = tmp_path / "file"
    target.write_text("x\n")
    result = render(tmp_path, output=target)
    assert result.code == 2
    assert result.problems == [f"{target}: --output must be a directory; this is a file"]
    assert target.read_text() == "x\n"


def test_output_that_cannot_be_created_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x\n")
    result = render(tmp_path, output=tmp_path / "file" / "config")
    assert result.code == 2
    assert result.problems == [f"{tmp_path / 'file'}: not a directory, so --output {tmp_path}/file/config "
                               f"cannot be created"]


def test_a_failed_render_into_a_new_directory_leaves_no_directory(tmp_path):
    result = render(tmp_path, "cluster: [\n", output=tmp_path / "new")
    assert result.code == 1
    assert not (tmp_path / "new").exists()


# --------------------------------------------------------------------------- write failures


def test_a_write_failure_while_staging_leaves_the_output_as_it_was(rendered, monkeypatch):
    config = rendered / "config"
    before = snapshot(config)
    real = bundle.output.write_file
    calls = []

    def failing(path, data, mode=0o644):
        calls.append(path)
        if len(calls) == 5:
            raise OSError(28, "No space left on device", str(path))
        return real(path, data, mode)

    monkeypatch.setattr(bundle.output, "write_file", failing)
    result = render(rendered, {"prometheus": {"scrape_interval": "30s"}})
    assert result.code == 1
    assert len(result.problems) == 1 and "No space left on device" in result.problems[0], result.stderr
    assert snapshot(config) == before
    no_leftovers(rendered)


def test_a_failure_in_the_middle_of_the_swap_is_rolled_back(rendered, monkeypatch):
    config = rendered / "config"
    before = contents(config)
    real = os.replace
    calls = []

    def failing(src, dst, *a, **k):
        if str(dst).startswith(str(config)) and ".render" not in str(dst):
            calls.append(dst)
            if len(calls) == 3:
                raise OSError(5, "Input/output error", str(dst))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(bundle.output.os, "replace", failing)
    result = render(rendered, {"prometheus": {"scrape_interval": "30s"}, "layers": {"tracing": False}})
    assert result.code == 1
    assert len(result.problems) == 1 and "rolled back" in result.problems[0], result.stderr
    assert len(calls) >= 3
    assert contents(config) == before
    no_leftovers(rendered)


# --------------------------------------------------------------------------- interruptions

# Runs render.py with os.replace replaced inside the swap: at the Nth file it sends the
# given signal to itself (SIGKILL: the process dies there; others: they are deferred).
INTERRUPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    import bundle.output as out
    nth, signum = int(sys.argv[1]), int(sys.argv[2])
    real, seen = os.replace, []
    def replace(src, dst, *a, **k):
        if out.STAGING in str(src) and out.PREVIOUS not in str(src):
            seen.append(dst)
            if len(seen) == nth:
                os.kill(os.getpid(), signum)
        return real(src, dst, *a, **k)
    out.os.replace = replace
    from bundle.cli import main
    sys.exit(main(sys.argv[3:]))
""")


def interrupted_render(work: Path, nth: int, signum: int, overlay: dict) -> subprocess.CompletedProcess:
    path = work / "new.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return subprocess.run([sys.executable, "-c", INTERRUPT.format(root=str(ROOT)), str(nth), str(signum),
                           "--values", str(path), "--output", str(work / "config"),
                           "--env-file", str(work / ".env")], capture_output=True, text=True, cwd=work)


NEW = {"prometheus": {"scrape_interval": "30s"}, "layers": {"tracing": False},
       "grafana": {"datasources": {"prometheus": {"uid": "metrics"}}}}


def fresh(tmp_path: Path, overlay: dict | None) -> dict[str, bytes]:
    """What a clean render of the defaults (+ overlay) gives."""
    return contents(rendered_copy(tmp_path / "fresh", overlay) / "config")


def test_a_render_killed_mid_swap_is_completed_by_the_next_run(rendered, tmp_path):
    killed = interrupted_render(rendered, 4, signal.SIGKILL, NEW)
    assert killed.returncode == -signal.SIGKILL
    config = rendered / "config"
    assert (config / ".render-journal").exists()
    mixed = contents(config)
    assert mixed != fresh(tmp_path / "a", NEW) and mixed != fresh(tmp_path / "b", None)

    check = render(rendered, NEW, extra=["--check"])
    assert check.code == 1
    assert any(".render-journal: a render was interrupted" in line for line in check.problems), check.stderr

    # The next render, even one whose own input is refused, first completes the swap.
    again = render(rendered, "cluster: [\n")
    assert again.code == 1
    assert "its swap is now completed" in again.stderr
    assert contents(config) == fresh(tmp_path / "c", NEW)
    no_leftovers(rendered)


def test_a_killed_swap_whose_staging_copy_is_gone_is_rolled_back(rendered, tmp_path):
    before = contents(rendered / "config")
    killed = interrupted_render(rendered, 4, signal.SIGKILL, NEW)
    assert killed.returncode == -signal.SIGKILL
    staging = rendered / "config" / ".render-staging"
    for path in staging.rglob("*.json"):
        if ".previous" not in str(path):
            path.unlink()
    again = render(rendered, extra=["--check"])
    assert again.code == 1
    again = render(rendered)
    assert "its swap is now rolled back" in again.stderr
    assert again.code == 0, again.stderr
    assert contents(rendered / "config") == before
    no_leftovers(rendered)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_during_the_swap_waits_for_the_swap_to_complete(rendered, tmp_path, signum):
    result = interrupted_render(rendered, 2, signum, NEW)
    assert result.returncode == 128 + signum, result.stderr
    assert "Traceback" not in result.stderr
    assert "the swap had completed" in result.stderr
    assert contents(rendered / "config") == fresh(tmp_path, NEW)
    no_leftovers(rendered)


def test_a_signal_before_the_swap_leaves_the_output_as_it_was(rendered):
    """SIGTERM while the validators run: no traceback, nothing changed, nothing left."""
    config = rendered / "config"
    before = snapshot(config)
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        import bundle.cli
        def validate(*a, **k):
            os.kill(os.getpid(), signal.SIGTERM)
        bundle.cli.validate_tree = validate
        sys.exit(bundle.cli.main(sys.argv[1:]))
    """)
    (rendered / "overlay.yaml").write_text("cluster: other\n")
    result = subprocess.run([sys.executable, "-c", code, "--values", str(rendered / "overlay.yaml"),
                             "--output", str(config), "--env-file", str(rendered / ".env")],
                            capture_output=True, text=True, cwd=rendered)
    assert result.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().endswith("left as it was"), result.stderr
    assert snapshot(config) == before
    no_leftovers(rendered)


# --------------------------------------------------------------------------- the lock


def test_a_second_render_waits_for_the_lock(rendered):
    config = rendered / "config"
    fd = os.open(config, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    (rendered / "o.yaml").write_text("cluster: second\n")
    proc = subprocess.Popen([sys.executable, str(ROOT / "render.py"), "--values", str(rendered / "o.yaml"),
                             "--output", str(config), "--env-file", str(rendered / ".env")],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        seen = ""
        while "waiting for it" not in seen and time.monotonic() < deadline:
            seen += proc.stderr.readline()
        assert "another render.py is writing" in seen
        assert proc.poll() is None
    finally:
        os.close(fd)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, seen + rest
    assert "cluster: second" in (config / "prometheus" / "prometheus.yml").read_text()


def test_a_lock_held_too_long_is_one_line(rendered, monkeypatch):
    monkeypatch.setattr(bundle.output, "LOCK_WAIT_SECONDS", 0.3)
    config = rendered / "config"
    before = snapshot(config)
    fd = os.open(config, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        result = render(rendered, {"cluster": "x"})
    finally:
        os.close(fd)
    assert result.code == 1
    assert result.problems[-1].endswith("run again once it has finished")
    assert snapshot(config) == before


def test_two_renders_at_once_leave_one_whole_render(rendered, tmp_path):
    overlays = [{"cluster": "one", "layers": {"tracing": False}}, {"cluster": "two"}]
    procs = []
    for i, overlay in enumerate(overlays):
        (rendered / f"c{i}.yaml").write_text(yaml.safe_dump(overlay))
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "render.py"), "--values",
                                       str(rendered / f"c{i}.yaml"), "--output", str(rendered / "config"),
                                       "--env-file", str(rendered / ".env")],
                                      stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    final = contents(rendered / "config")
    assert final in (fresh(tmp_path / "one", overlays[0]), fresh(tmp_path / "two", overlays[1]))
    no_leftovers(rendered)


# --------------------------------------------------------------------------- modes


def test_modes_are_explicit_whatever_the_umask(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "render.py"), "--output", str(tmp_path / "config"),
                             "--env-file", str(tmp_path / ".env")],
                            capture_output=True, text=True, preexec_fn=lambda: os.umask(0o077))
    assert result.returncode == 0, result.stderr
    for path in [tmp_path / "config", *(tmp_path / "config").rglob("*")]:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))
    assert (tmp_path / ".env").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / ".env.example").stat().st_mode & 0o777 == 0o644


def test_a_mode_that_alone_differs_is_reported_and_fixed(rendered):
    """A clone made under umask 027: same bytes, files 0640, directories 0750."""
    config = rendered / "config"
    (config / "prometheus" / "prometheus.yml").chmod(0o640)
    (config / "prometheus").chmod(0o750)
    check = render(rendered, extra=["--check"])
    assert check.code == 1
    assert f"{config}/prometheus/prometheus.yml: mode 0640: a service that runs as another user cannot read it" \
        in check.problems
    assert f"{config}/prometheus/: mode 0750: a service that runs as another user cannot read the files in it" \
        in check.problems
    assert render(rendered).code == 0
    assert (config / "prometheus" / "prometheus.yml").stat().st_mode & 0o777 == 0o644
    assert (config / "prometheus").stat().st_mode & 0o777 == 0o755
    assert render(rendered, extra=["--check"]).code == 0


def test_unchanged_files_keep_their_inode_and_directories_are_never_swapped(rendered):
    """Running containers bind-mount these directories and files."""
    config = rendered / "config"
    directory = (config / "prometheus").stat().st_ino
    kept = (config / "alertmanager" / "alertmanager.yml").stat()
    assert render(rendered, {"prometheus": {"scrape_interval": "30s"}}).code == 0
    assert (config / "prometheus").stat().st_ino == directory
    now = (config / "alertmanager" / "alertmanager.yml").stat()
    assert (now.st_ino, now.st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)


def test_a_read_only_output_is_one_line_and_untouched(rendered):
    """config/ on a read-only filesystem (a read-only bind mount in a mount namespace of
    its own; unshare needs root, as CI has)."""
    config, ro = rendered / "config", rendered / "ro"
    ro.mkdir()
    before = snapshot(config)
    script = (f"mount --bind {config} {ro} && mount -o remount,ro,bind {ro} && "
              f"exec {sys.executable} {ROOT / 'render.py'} --output {ro} --env-file {rendered / '.env'} "
              f"--values {rendered / 'o.yaml'}")
    (rendered / "o.yaml").write_text("cluster: other\n")
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    if "unshare failed" in result.stderr or "Operation not permitted" in result.stderr:
        pytest.fail(f"this test needs root for unshare -m: {result.stderr}")
    problems = [line for line in result.stderr.splitlines() if "warning" not in line]
    assert result.returncode == 1, result.stderr
    assert problems == [f"{ro}/.render-staging: Read-only file system; {ro} was left as it was"]
    assert snapshot(config) == before


def test_the_swap_puts_what_others_refer_to_in_first(rendered, monkeypatch):
    """Datasources before the dashboards that use their uids, rule files and notification
    templates before the files that load them."""
    config = rendered / "config"
    real, order = os.replace, []

    def record(src, dst, *a, **k):
        if ".render-staging" in str(src) and ".previous" not in str(src):
            order.append(str(Path(dst).relative_to(config)))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(bundle.output.os, "replace", record)
    result = render(rendered, {"grafana": {"datasources": {"prometheus": {"uid": "metrics"}}},
                               "prometheus": {"scrape_interval": "30s"}, "alerts": {"HighCPUUsage": {"threshold": 91}}})
    assert result.code == 0, result.stderr
    datasources = order.index("grafana/provisioning/datasources/datasources.yml")
    assert all(datasources < order.index(n) for n in order if n.startswith("grafana/dashboards/"))
    assert order.index("prometheus/rules/platform.yml") < order.index("prometheus/prometheus.yml")
