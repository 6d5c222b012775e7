"""The images of the enabled layers: list them, pull them (saying, per image, why one
could not be pulled and what to do), and save them into one archive and load them back
for hosts that reach no registry.

    python -m bundle.images [--values FILE]... list          # KEY REF SERVICES, one image a line
    python -m bundle.images [--values FILE]... ref KEY       # the image of values.images.KEY
    python -m bundle.images [--values FILE]... pull          # pull what is not here yet
    python -m bundle.images pull --rendered                 # ... of config/ (what `up` runs)
    python -m bundle.images [--values FILE]... save FILE     # every image into one archive
    python -m bundle.images [--values FILE]... load FILE     # and back, checked

Exit 0 on success, 1 when an image could not be pulled, saved or loaded (one line each),
2 on a usage error. Other modules (make doctor, make upgrade) import the functions.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import DEFAULT_VALUES, archive, compose, layers
from .build import image_ref
from .cli import load as load_values
from .errors import InputError
from .stack import Stack, StackError

ARCHIVE_KIND = "obsbundle-images/1"
IMAGES_MEMBER = "images.tar"
PULL_TIMEOUT = 1800
# Compose files name each image as ${<KEY>_IMAGE...}, KEY being the values.images key
# upper-cased (templates/compose.env.j2 writes those variables).
IMAGE_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)_IMAGE\b")


@dataclass(frozen=True)
class Image:
    key: str                     # values.images.<key>
    ref: str                     # what Compose runs: [registry]repository:tag[@sha256:...]
    services: tuple[str, ...]    # the services of the enabled layers that run it

    @property
    def name(self) -> str:
        """The reference without its digest (repository:tag): what `docker save` records."""
        return self.ref.split("@", 1)[0]

    @property
    def registry(self) -> str:
        """The registry host the reference points at (docker.io when it names none)."""
        first, _, rest = self.ref.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            return first
        return "docker.io"


@dataclass(frozen=True)
class PullResult:
    image: Image
    status: str      # present, pulled, unreachable, not-found, auth, rate-limited, failed
    detail: str = ""  # docker's own words, when it failed

    @property
    def ok(self) -> bool:
        return self.status in ("present", "pulled")

    @property
    def fix(self) -> str:
        key, registry = self.image.key, self.image.registry
        return {
            "unreachable": f"this host cannot reach {registry}: check DNS, proxy and firewall, or set "
                           f"images.registry to a mirror it can reach (e.g. registry: mirror.example.com/), "
                           f"or bring the images from a host that can pull: `make save` there, "
                           f"`make load FILE=...` here",
            "not-found": f"{registry} has no {self.image.ref}: check images.{key} (repository and tag) "
                         f"and, with images.registry set, that the mirror carries it",
            "auth": f"{registry} refused access: `docker login {registry}` with an account that may pull "
                    f"it, or check images.{key}.repository (a registry answers so for a repository "
                    f"that does not exist too)",
            "rate-limited": f"{registry} limits anonymous pulls: `docker login {registry}`, wait, or "
                            f"set images.registry to a mirror",
            "failed": f"see docker's message; `docker pull {self.image.ref}` shows the same",
        }.get(self.status, "")


def enabled_images(values: dict) -> list[Image]:
    """The images the enabled layers run, in the order their Compose files name them."""
    services: dict[str, list[str]] = {}
    for layer in layers.enabled(values):
        for service, definition in compose.definitions(layer.compose).items():
            match = IMAGE_VARIABLE.search(str(definition.get("image", "")))
            if match:
                services.setdefault(match.group(1).lower(), []).append(service)
    return [Image(key, image_ref(values, key), tuple(names)) for key, names in services.items()]


def rendered_images(model: dict) -> list[Image]:
    """The images `docker compose` will run (its resolved model, `docker compose config`),
    each with the values key its Compose file names it by."""
    keys = {service: match.group(1).lower() for layer in layers.all_layers()
            for service, definition in compose.definitions(layer.compose).items()
            if (match := IMAGE_VARIABLE.search(str(definition.get("image", ""))))}
    found: dict[str, list[str]] = {}
    for service, definition in model["services"].items():
        found.setdefault(definition["image"], []).append(service)
    return [Image(keys.get(services[0], services[0]), ref, tuple(services)) for ref, services in found.items()]


def docker(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def feed(command: list[str], stream) -> subprocess.CompletedProcess:
    """Run a command with `stream` (any readable binary file object) as its stdin."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=out, stderr=err)
        try:
            while chunk := stream.read(archive.CHUNK):
                proc.stdin.write(chunk)
        except BrokenPipeError:
            pass
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
        code = proc.wait()
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(command, code, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


def image_id(ref: str) -> str | None:
    """The local image's id (sha256:...) for a reference, or None when it is not here."""
    result = docker("image", "inspect", "--format", "{{.Id}}", ref)
    return result.stdout.strip() if result.returncode == 0 else None


def is_present(ref: str) -> bool:
    return image_id(ref) is not None


# What docker says, mapped to why (matched in this order, case-insensitively).
REASONS = [
    ("rate-limited", r"toomanyrequests|rate limit"),
    ("auth", r"unauthorized|authentication required|pull access denied|access to the resource is denied"
             r"|denied:|insufficient_scope|no basic auth credentials"),
    ("not-found", r"manifest unknown|not found: manifest|manifest for \S+ not found|: not found"
                  r"|name unknown|no such manifest"),
    ("unreachable", r"no such host|connection refused|i/o timeout|tls handshake timeout|network is unreachable"
                    r"|no route to host|timeout exceeded|context deadline exceeded|connection reset"
                    r"|server misbehaving|dial tcp|proxyconnect|temporary failure in name resolution"),
]


def classify(message: str) -> str:
    for status, pattern in REASONS:
        if re.search(pattern, message, re.IGNORECASE):
            return status
    return "failed"


def pull(image: Image, always: bool = False, timeout: float = PULL_TIMEOUT) -> PullResult:
    """Pull one image unless it is here already (or `always`)."""
    if not always and is_present(image.ref):
        return PullResult(image, "present")
    try:
        result = docker("pull", "--quiet", image.ref, timeout=timeout)
    except subprocess.TimeoutExpired:
        return PullResult(image, "unreachable", f"docker pull did not finish within {timeout:.0f}s")
    if result.returncode == 0:
        return PullResult(image, "pulled")
    detail = " ".join((result.stderr or result.stdout).split()) or f"docker pull exited {result.returncode}"
    return PullResult(image, classify(detail), detail)


def pull_all(values: dict, always: bool = False) -> list[PullResult]:
    return [pull(image, always) for image in enabled_images(values)]


def report(results: list[PullResult], out=sys.stdout) -> int:
    """Print one line per image (and the fix under each failure); 0 when all are here."""
    width = max((len(r.image.key) for r in results), default=0)
    for result in results:
        line = f"{result.image.key:<{width}}  {result.image.ref}  {result.status}"
        if not result.ok:
            line = f"{result.image.key:<{width}}  {result.image.ref}  FAILED ({result.status}): {result.detail}"
        print(line, file=out)
        if not result.ok:
            print(f"{'':<{width}}  fix: {result.fix}", file=out)
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"{len(failed)} of {len(results)} images could not be pulled "
              f"({', '.join(f'images.{r.image.key}' for r in failed)})", file=out)
    return 1 if failed else 0


# ------------------------------------------------------------------ save and load

def save(values: dict, path: Path) -> dict:
    """Every image of the enabled layers (which must all be here) into one archive.
    Returns its manifest."""
    images = enabled_images(values)
    missing = [i for i in images if not is_present(i.ref)]
    if missing:
        raise archive.ArchiveError("not here, so not saved (run `make pull` first): "
                                   + ", ".join(f"{i.ref} (images.{i.key})" for i in missing))
    entries = []
    for image in images:
        ident, by_name = image_id(image.ref), image_id(image.name)
        if ident != by_name:
            raise archive.ArchiveError(f"{image.name} is not the image {image.ref} pins here: "
                                       f"pull it again (`docker pull {image.ref}`)")
        entries.append({"key": image.key, "ref": image.ref, "name": image.name, "id": ident})
    with tempfile.TemporaryDirectory(dir=path.parent if path.parent.exists() else None,
                                     prefix=".images-") as scratch:
        tar = Path(scratch) / IMAGES_MEMBER
        result = docker("save", "--output", str(tar), *dict.fromkeys(i.name for i in images))
        if result.returncode != 0:
            raise archive.ArchiveError(f"docker save failed: {' '.join(result.stderr.split())}")
        manifest = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "images": entries}
        archive.write(path, ARCHIVE_KIND, manifest, {IMAGES_MEMBER: tar})
    return manifest


def load(path: Path, values: dict | None = None) -> list[str]:
    """Load an archive made by save(): refused whole (nothing loaded) when it is not one
    or does not match its checksums. Returns problems: images of the values that the
    archive does not bring, or that the engine does not know by their pinned reference."""
    with archive.Reader(path, ARCHIVE_KIND) as reader:
        entries = reader.manifest.get("images") or []
        result = feed(["docker", "load", "--quiet"], reader.open(IMAGES_MEMBER))
        if result.returncode != 0:
            raise archive.ArchiveError(f"docker load failed: {' '.join(result.stderr.split())}")
    problems = []
    for entry in entries:
        got = image_id(entry["name"])
        if got != entry["id"]:
            problems.append(f"{entry['name']}: after loading, the engine has {got or 'nothing'} "
                            f"under that name, not {entry['id']}")
        elif entry["ref"] != entry["name"] and image_id(entry["ref"]) != got:
            problems.append(f"{entry['ref']}: loaded as {entry['name']}, but this engine does not know "
                            f"it by its digest (its image store drops registry digests on load): "
                            f"pin images.{entry['key']} by tag on this host")
    if values is not None:
        brought = {e["ref"] for e in entries}
        problems += [f"{i.ref} (images.{i.key}): not in {path}" for i in enabled_images(values)
                     if i.ref not in brought and not is_present(i.ref)]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The images of the enabled layers.")
    parser.add_argument("--values", action="append", type=Path, default=[], metavar="FILE")
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("list")
    ref = sub.add_parser("ref")
    ref.add_argument("key")
    pull_cmd = sub.add_parser("pull")
    pull_cmd.add_argument("--always", action="store_true", help="pull even images that are here")
    pull_cmd.add_argument("--rendered", action="store_true",
                          help="the images of the rendered config (what `docker compose up` runs), "
                               "not of the values")
    for name in ("save", "load"):
        sub.add_parser(name).add_argument("file", type=Path)
    args = parser.parse_args(argv)
    try:
        values, _ = load_values([DEFAULT_VALUES, *args.values])
    except InputError as error:
        print("\n".join(error.problems), file=sys.stderr)
        return 1
    if args.what == "ref":
        if args.key not in values["images"] or args.key == "registry":
            print(f"images.{args.key}: no such image in the values", file=sys.stderr)
            return 1
        print(image_ref(values, args.key))
        return 0
    if args.what == "list":
        for image in enabled_images(values):
            print(image.key, image.ref, ",".join(image.services))
        return 0
    if args.what == "pull":
        if args.rendered:
            try:
                images = rendered_images(Stack().model)
            except StackError as error:
                print(f"pull: {error}", file=sys.stderr)
                return 1
            return report([pull(image, args.always) for image in images])
        return report(pull_all(values, args.always))
    try:
        if args.what == "save":
            manifest = save(values, args.file)
            print(f"saved {len(manifest['images'])} images to {args.file}")
            return 0
        problems = load(args.file, values)
    except archive.ArchiveError as error:
        print(f"{args.what}: {error}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"load: {problem}", file=sys.stderr)
    if not problems:
        print(f"loaded the images of {args.file}; every image of the enabled layers is here")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
