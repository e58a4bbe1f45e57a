"""The jobs' images: a job NAME whose directory jobs/NAME/ holds a Dockerfile runs an image
built from that directory. Pure: what to build and under which name, no Pulumi.

The image's tag is a digest of the directory (names, modes, contents) and of the build recipe
(templates/steps/build-image.sh.j2, templates/images/base-files.py), so a change to either
makes a new tag, and the job that names it rolls out; an unchanged
directory keeps its tag, and nothing is built again.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from cluster.config import JOBS_DIR, ClusterSpec
from cluster.render import TEMPLATES
from cluster.topology import registry

BUILD_SCRIPT = TEMPLATES / "steps" / "build-image.sh.j2"
BASE_FILES = TEMPLATES / "images" / "base-files.py"  # what the base image is made of


def _sha256(*parts: bytes) -> str:
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def base_image() -> str:
    """The python3 base image, made on the building client; a new recipe, a new tag."""
    return f"hashicluster/python3:{_sha256(BASE_FILES.read_bytes())[:16]}"


@dataclass(frozen=True)
class JobImage:
    """The image of one job: its build context and where it goes."""

    job: str
    context: bytes  # jobs/JOB/ as a tar, the same bytes for the same files
    digest: str  # sha256 of the context and the build script
    registry: str  # host:port

    @property
    def tag(self) -> str:
        return self.digest[:16]

    @property
    def ref(self) -> str:
        """The image the job runs: its repository in the cluster's registry, tagged by digest."""
        return f"{self.registry}/{self.job}:{self.tag}"

    @property
    def latest(self) -> str:
        """The same image as `latest` (the job file's default, for a run by hand)."""
        return f"{self.registry}/{self.job}:latest"


def context_tar(directory: Path) -> bytes:
    """DIRECTORY's files as a tar with fixed owners and times, in name order: reproducible."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            info = tarfile.TarInfo(str(path.relative_to(directory)))
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o755 if path.stat().st_mode & 0o111 else 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def job_image(spec: ClusterSpec, job: str) -> JobImage | None:
    """JOB's image, or None when it runs none (no jobs/JOB/Dockerfile)."""
    directory = JOBS_DIR / job
    if not (directory / "Dockerfile").is_file():
        return None
    context = context_tar(directory)
    digest = _sha256(context, BUILD_SCRIPT.read_bytes(), BASE_FILES.read_bytes())
    return JobImage(job, context, digest, registry(spec))
