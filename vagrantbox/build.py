"""Build a .box file: disk image + metadata.json + Vagrantfile, moved into place atomically."""

from __future__ import annotations

import fcntl
import io
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from vagrantbox import image, spec
from vagrantbox.errors import BoxError
from vagrantbox.host import BUILD_TOOLS, log, require_root, require_tools, vagrant_insecure_pubkey


def read_pubkey(pubkey_file: Path | None) -> str:
    """The public key for the vagrant user: PUBKEY_FILE, else the vagrant package's insecure key."""
    path = pubkey_file or vagrant_insecure_pubkey()
    try:
        return spec.validate_pubkey(path.read_text())
    except (OSError, ValueError) as error:
        raise BoxError(f"cannot use {path} as an ssh public key: {error}") from error


def recipe_file(target: Path) -> Path:
    return target.with_name(target.name + ".recipe")


def current(target: Path, digest: str) -> bool:
    """True when TARGET exists and was built from the recipe DIGEST."""
    try:
        return target.exists() and recipe_file(target).read_text().strip() == digest
    except OSError:
        return False


def write_box(box: spec.BoxSpec, qcow2: Path, target: Path) -> None:
    """Tar box.img, metadata.json and Vagrantfile into TARGET (uncompressed; qcow2 is compressed)."""
    with tarfile.open(target, "w") as tar:
        files = (("metadata.json", spec.metadata(box.size_gb)), ("Vagrantfile", spec.vagrantfile()))
        for name, text in files:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
        tar.add(qcow2, arcname="box.img")


def build(
    box: spec.BoxSpec, out_dir: Path, *, rebuild: bool = False, pubkey_file: Path | None = None
) -> Path:
    """Build BOX into OUT_DIR unless it is there from the same recipe (or REBUILD); return its path.

    The recipe's digest (spec.recipe_digest) is kept beside the box in `<box>.recipe`: a box
    from another recipe (packages, guest files, key) is built again.
    """
    target = out_dir / box.file_name
    pubkey = read_pubkey(pubkey_file)
    digest = spec.recipe_digest(box, pubkey)
    if current(target, digest) and not rebuild:
        log(f"{target} is up to date ({target.stat().st_size / 2**20:.0f} MiB); --rebuild to rebuild")
        return target
    require_root()
    require_tools(BUILD_TOOLS)
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if current(target, digest) and not rebuild:
            return target
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=out_dir))
        try:
            qcow2 = image.build_qcow2(box, pubkey, work)
            partial = work / box.file_name
            write_box(box, qcow2, partial)
            partial.replace(target)
            recipe_file(target).write_text(digest + "\n")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    log(f"built {target} ({target.stat().st_size / 2**20:.0f} MiB) in {time.monotonic() - started:.0f} s")
    return target
