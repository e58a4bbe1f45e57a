"""The image of each job that has one (cluster/images.py), built on the first client and
pushed to the cluster's registry by two remote Commands, each run when the image's digest
changes: the build, as soon as the client's Docker and the registry are installed (alongside
the servers' steps; the client's roll turn waits for it), and a check after the client's roll
turn that the registry has the image, which builds it then if the first could not (the
client's Docker waited for a reboot that its roll turn gave it)."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import pulumi
from pulumi_command import remote

from cluster import install
from cluster.images import JobImage, base_image
from cluster.machines import Machine
from cluster.render import render_script


def build_script(image: JobImage, builder: Machine, tls: bool, deferred_to: str | None = None) -> str:
    """templates/steps/build-image.sh.j2 for IMAGE on BUILDER; with DEFERRED_TO (the step that
    builds it after a reboot), it leaves the build to that step while Docker waits for one."""
    scheme = "https" if tls else "http"
    return render_script("build-image.sh.j2", job=image.job, machine=builder.node.name, image=image.ref,
                         tag=image.tag, latest=image.latest, base=base_image(), registry=image.registry,
                         registry_url=f"{scheme}://{image.registry}", deferred_to=deferred_to,
                         reboot_required=install.REBOOT_REQUIRED, heredoc=install.HEREDOC)


def _command(name: str, image: JobImage, builder: Machine, script: str,
             after: Sequence[pulumi.Resource]) -> remote.Command:
    script = builder.as_root(script)
    return remote.Command(
        name,
        connection=builder.connection,
        create=script,
        update=script,
        stdin=base64.b64encode(image.context).decode() + "\n",
        triggers=[image.digest],
        opts=pulumi.ResourceOptions(parent=builder.resource, depends_on=list(after)),
    )


def image_step(image: JobImage, builder: Machine, tls: bool,
               after: Sequence[pulumi.Resource]) -> remote.Command:
    """Build IMAGE on BUILDER (after AFTER: its Docker, the registry) and push it."""
    pushed = f"{image.job}-image-pushed"
    return _command(f"{image.job}-image", image, builder, build_script(image, builder, tls, pushed), after)


def image_pushed_step(image: JobImage, builder: Machine, tls: bool,
                      after: Sequence[pulumi.Resource]) -> remote.Command:
    """After AFTER (the build, BUILDER's roll turn): IMAGE is in the registry, built now if it
    was not."""
    return _command(f"{image.job}-image-pushed", image, builder, build_script(image, builder, tls), after)
