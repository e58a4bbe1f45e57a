"""cluster/jobfiles.py: the drivers a job file's tasks use, read from its HCL."""

from __future__ import annotations

import pytest

from cluster.config import JOBS_DIR
from cluster.jobfiles import JobFileError, task_drivers

TWO_GROUPS = '''
variable "image" { default = "x" }
job "two" {
  group "web" {
    task "app" {
      driver = "docker"
      config { image = var.image }
    }
    task "sidecar" {
      driver = "exec"
      config { command = "/bin/sh" }
    }
  }
  group "batch" {
    task "once" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo ${NOMAD_ALLOC_ID}"]
      }
      template {
        destination = "local/x"
        data        = <<EOT
{{ key "a" }}
EOT
      }
    }
  }
}
'''


def test_every_task_of_every_group_is_read() -> None:
    assert task_drivers(TWO_GROUPS) == {"docker", "exec", "raw_exec"}


def test_the_project_jobs() -> None:
    assert task_drivers((JOBS_DIR / "fib.nomad.hcl").read_text()) == {"docker"}
    assert task_drivers((JOBS_DIR / "fib-raw-exec.nomad.hcl").read_text()) == {"raw_exec"}


@pytest.mark.parametrize(("hcl", "words"), [
    ('job "x" {\n  group "g" {\n', "not a Nomad job file"),
    ('variable "v" {}\n', "expected one job block, found 0"),
    ('job "a" {}\njob "b" {}\n', "expected one job block, found 2"),
])
def test_a_file_that_is_not_one_job_is_refused(hcl: str, words: str) -> None:
    with pytest.raises(JobFileError, match=words):
        task_drivers(hcl)
