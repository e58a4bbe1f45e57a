"""The image of each job that has one (cluster/images.py), built on the first client and
pushed to the cluster's registry by one remote Command: it runs when the image's digest
changes, after the client's Docker and the registry work."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import pulumi
from pulumi_command import remote

from cluster import install
from cluster.images import JobImage, base_image
from cluster.machines import Machine
from cluster.render import render_script


def build_script(image: JobImage, builder: Machine) -> str:
    """templates/steps/build-image.sh.j2 for IMAGE on BUILDER."""
    return render_script("build-image.sh.j2", job=image.job, machine=builder.node.name, image=image.ref,
                         latest=image.latest, base=base_image(), registry=image.registry,
                         heredoc=install.HEREDOC)


def image_step(image: JobImage, builder: Machine, after: Sequence[pulumi.Resource]) -> remote.Command:
    """Build IMAGE on BUILDER (after AFTER: its Docker, the registry) and push it."""
    script = builder.as_root(build_script(image, builder))
    return remote.Command(
        f"{image.job}-image",
        connection=builder.connection,
        create=script,
        update=script,
        stdin=base64.b64encode(image.context).decode() + "\n",
        triggers=[image.digest],
        opts=pulumi.ResourceOptions(parent=builder.resource, depends_on=list(after)),
    )
