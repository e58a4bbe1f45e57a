"""Nomad jobs as Pulumi resources: `NomadJob`, a dynamic resource over Nomad's HTTP API.

    NomadJob("fib", hcl=Path("jobs/fib.nomad.hcl").read_text(),
             address="http://10.210.1.10:4646", opts=ResourceOptions(depends_on=[gate]))

- create: Nomad parses the HCL (`/v1/jobs/parse`, canonicalized), the job is registered, then
  (with `wait_healthy`) the provider waits for the version it registered to be healthy: its
  deployment `successful` and as many healthy allocations as the groups' counts (healthy:
  every task running and, for allocations of a deployment, Nomad's health, i.e. the Consul
  checks passing for `min_healthy_time`). Without a deployment (system and batch jobs,
  `update { max_parallel = 0 }`, or a spec registered again unchanged) the allocations of
  the version alone count. A failed or cancelled deployment (with `auto_revert`, Nomad has
  rolled back) or the timeout ends the wait with the last state seen: the deployment, every
  allocation with its latest task events, the stderr of a failing task, placement failures.
- diff: the canonical parsed job, hashed, against the hash recorded at the last
  create/update: whitespace and comments are no change. A new job ID means a new job, so the
  resource is replaced. Without Nomad at hand (a cluster still to be made) the HCL text is
  compared instead.
- update: register the new spec, wait again. delete: deregister (purge by default), wait
  until every allocation has stopped. read: the live job's version and healthy allocations;
  a job that is gone or stopped reads as gone, one changed by hand as a changed spec.

A job that fails to get healthy on create stays registered, for `nomad job status`: the
next `pulumi up` registers it again and waits anew.

Pulumi runs the provider in a separate process (`pulumi-resource-pulumi-python`) from a dill
pickle of `NomadJobProvider`, which refers to this module by name: the process imports
`cluster.jobs` from the project root, as the program does.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi import dynamic

DEFAULT_TIMEOUT = 300.0
POLL_SECONDS = 0.5
REQUEST_TIMEOUT = 10
TERMINAL_CLIENT_STATUSES = ("complete", "failed", "lost")
FAILED_DEPLOYMENT_STATUSES = ("failed", "cancelled")
SETTINGS = ("address", "wait_healthy", "timeout", "purge_on_delete")
OUTPUTS = ("job_id", "job_version", "job_modify_index", "healthy_allocations", "spec_hash")
EVENTS_SHOWN = 3
STDERR_BYTES = 2000
STDERR_LINES = 8

Job = dict[str, Any]


class NomadJobError(Exception):
    """A job that Nomad refuses, cannot place or cannot get healthy; the message says why."""


class NomadUnreachableError(NomadJobError):
    """No answer from Nomad's HTTP API."""


class NomadApi:
    """The few Nomad HTTP API calls the provider makes, over python-nomad, with clear errors."""

    def __init__(self, address: str, request_timeout: int = REQUEST_TIMEOUT,
                 ca_pem: str | None = None, token: str | None = None) -> None:
        import nomad

        self.address = address.rstrip("/")
        # With TLS, the server's certificate is checked against the cluster's CA.
        verify: bool | str = _ca_file(ca_pem) if ca_pem else True
        # With ACLs, the job resources' own token (never an argument: a request header).
        self._nomad = nomad.Nomad(address=self.address, timeout=request_timeout, verify=verify, token=token)

    def _call(self, what: str, call: Callable[[], Any], missing_ok: bool = False) -> Any:
        import nomad.api.exceptions as errors

        try:
            return call()
        except errors.URLNotFoundNomadException:
            if missing_ok:
                return None
            raise NomadJobError(f"{what}: not found at Nomad {self.address}") from None
        except ValueError as err:  # a body that is not JSON
            raise NomadJobError(f"{what}: {self.address} did not answer JSON ({err}): is it "
                                "Nomad's HTTP API?") from None
        except errors.BaseNomadException as err:
            response = getattr(err, "nomad_resp", None)
            text = getattr(response, "text", None)
            if text is None:
                raise NomadUnreachableError(
                    f"{what}: cannot reach Nomad at {self.address} ({response}); is the cluster "
                    "up, and does Pulumi run where its servers are reachable (./run runs it "
                    "inside the lab network)?") from None
            status = getattr(response, "status_code", "?")
            raise NomadJobError(f"{what}: Nomad at {self.address} answered {status}: "
                                f"{text.strip()}") from None

    def parse(self, hcl: str, variables: Mapping[str, str] | None = None) -> Job:
        """The job of an HCL text with the values of its input VARIABLES, canonicalized
        (defaults filled in) by Nomad."""
        request = {"JobHCL": hcl, "Variables": variables_file(variables or {}), "Canonicalize": True}
        job: Job = self._call("parse the job", lambda: self._nomad.jobs.request(
            "parse", json=request, method="post", allow_redirects=True).json())
        return job

    def register(self, job: Job) -> dict[str, Any]:
        reply: dict[str, Any] = self._call(f"register job {job['ID']}",
                                           lambda: self._nomad.jobs.register_job({"Job": job}))
        return reply

    def job(self, job_id: str) -> Job | None:
        job: Job | None = self._call(f"read job {job_id}", lambda: self._nomad.job.get_job(job_id),
                                     missing_ok=True)
        return job

    def deployment(self, job_id: str) -> dict[str, Any] | None:
        """The job's latest deployment, if any."""
        deployment: dict[str, Any] | None = self._call(
            f"read the deployment of job {job_id}",
            lambda: self._nomad.job.get_deployment(job_id), missing_ok=True)
        return deployment

    def allocations(self, job_id: str) -> list[dict[str, Any]]:
        allocs: list[dict[str, Any]] | None = self._call(
            f"list the allocations of job {job_id}",
            lambda: self._nomad.job.get_allocations(job_id), missing_ok=True)
        return allocs or []

    def allocation(self, alloc_id: str) -> dict[str, Any] | None:
        alloc: dict[str, Any] | None = self._call(
            f"read allocation {alloc_id}",
            lambda: self._nomad.allocation.get_allocation(alloc_id), missing_ok=True)
        return alloc

    def evaluation(self, eval_id: str) -> dict[str, Any] | None:
        evaluation: dict[str, Any] | None = self._call(
            f"read evaluation {eval_id}",
            lambda: self._nomad.evaluation.get_evaluation(eval_id), missing_ok=True)
        return evaluation

    def evaluations(self, job_id: str) -> list[dict[str, Any]]:
        evals: list[dict[str, Any]] | None = self._call(
            f"list the evaluations of job {job_id}",
            lambda: self._nomad.job.get_evaluations(job_id), missing_ok=True)
        return evals or []

    def task_stderr(self, alloc_id: str, task: str, tail_bytes: int = STDERR_BYTES) -> str:
        """The end of a task's stderr, or "" when Nomad cannot serve it (best effort)."""
        try:
            logs = self._nomad.client.stream_logs
            text: str = self._call(f"read the stderr of {alloc_id}", lambda: logs.stream(
                alloc_id, task, "stderr", origin="end", offset=tail_bytes, plain=True))
        except NomadJobError:
            return ""
        return text

    def deregister(self, job_id: str, purge: bool) -> None:
        self._call(f"deregister job {job_id}",
                   lambda: self._nomad.job.deregister_job(job_id, purge=purge), missing_ok=True)


def connect(address: str, ca_pem: str | None = None, token: str | None = None) -> NomadApi:
    """The API client of one Nomad address (a seam for the unit tests)."""
    return NomadApi(address, ca_pem=ca_pem, token=token)


def _ca_file(pem: str) -> str:
    """A file holding the CA certificate PEM (public), for requests' `verify`."""
    digest = hashlib.sha256(pem.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"hashicluster-ca-{digest}.pem"
    if not path.exists() or path.read_text() != pem:
        path.write_text(pem)
    return str(path)


def _connect(props: Mapping[str, Any]) -> NomadApi:
    ca, token = props.get("ca_pem"), props.get("token")
    return connect(str(props["address"]), ca if isinstance(ca, str) and ca else None,
                   token if isinstance(token, str) and token else None)


# ---------------------------------------------------------------------------------------------
# Pure logic: what a job's state means.


def variables_file(variables: Mapping[str, str]) -> str:
    """VARIABLES as the text of an HCL2 variables file (`name = "value"` lines): what Nomad's
    parse API takes, as `nomad job run -var-file` does. A value is a JSON string, which HCL
    reads as the same string unless it holds a template sequence (refused)."""
    for name, value in variables.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_-]*$", name):
            raise NomadJobError(f"job variable {name!r}: not an HCL identifier")
        if "${" in value or "%{" in value:
            raise NomadJobError(f"job variable {name}: {value!r} holds a template sequence")
    return "".join(f"{name} = {json.dumps(value)}\n" for name, value in sorted(variables.items()))


def spec_hash(job: Mapping[str, Any]) -> str:
    """A stable digest of a parsed job spec: same spec, same hash, whatever the key order."""
    text = json.dumps(job, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def desired_count(job: Mapping[str, Any]) -> int:
    """How many allocations the job asks for (service and batch jobs: the groups' counts)."""
    return sum(int(group.get("Count") or 0) for group in job.get("TaskGroups") or [])


def alloc_healthy(alloc: Mapping[str, Any]) -> bool:
    """Running, every task running, and not unhealthy in the eyes of a deployment tracking it
    (allocations outside deployments have no health: running is as good as it gets)."""
    if alloc.get("ClientStatus") != "running":
        return False
    tasks = alloc.get("TaskStates") or {}
    if not tasks or any(task.get("State") != "running" for task in tasks.values()):
        return False
    return (alloc.get("DeploymentStatus") or {}).get("Healthy") is not False


def alloc_finished(alloc: Mapping[str, Any]) -> bool:
    return alloc.get("ClientStatus") in TERMINAL_CLIENT_STATUSES


@dataclass(frozen=True)
class Progress:
    """Where a job version stands: done, failed (with a reason) or still on its way."""

    done: bool
    failed: str | None
    healthy: int
    summary: str


def assess(job: Mapping[str, Any], version: int, settled: bool,
           deployment: Mapping[str, Any] | None, allocs: Sequence[Mapping[str, Any]]) -> Progress:
    """Judge the registered `version` of a job from its latest deployment and allocations.

    `settled`: the evaluation of the registration is over, so its deployment (if the job gets
    one) and its allocations exist. Until then nothing counts as done.
    """
    if job.get("Version") != version:
        return Progress(False, f"the job is at version {job.get('Version')}, not {version}: "
                        "rolled back after a failed deployment, or registered again by someone "
                        "else", 0, "")
    current = [a for a in allocs
               if a.get("JobVersion") == version and a.get("DesiredStatus") == "run"]
    healthy = [a for a in current if alloc_healthy(a)]
    kind = job.get("Type", "service")
    want = desired_count(job) if kind in ("service", "batch") else max(1, len(current))
    summary = f"{len(healthy)}/{want} allocations of version {version} healthy"
    if kind in ("batch", "sysbatch"):
        # Batch work ends: placed and not failed is as far as "healthy" goes.
        placed = [a for a in current if a.get("ClientStatus") in ("running", "complete")]
        failed = [a for a in current if a.get("ClientStatus") == "failed"]
        if failed:
            return Progress(False, f"{len(failed)} allocation(s) failed", 0, summary)
        return Progress(settled and len(placed) >= want, None, len(placed), summary)
    if deployment is not None and deployment.get("JobVersion") == version:
        status = deployment.get("Status", "")
        summary = f"deployment {status} ({deployment.get('StatusDescription', '')}); {summary}"
        if status in FAILED_DEPLOYMENT_STATUSES:
            return Progress(False, f"deployment {str(deployment.get('ID', ''))[:8]} {status}: "
                            f"{deployment.get('StatusDescription', '')}", len(healthy), summary)
        done = status == "successful" and len(healthy) >= want
        return Progress(done, None, len(healthy), summary)
    # No deployment of this registration (none needed, or the spec did not change): the
    # allocations alone.
    done = settled and len(healthy) >= want and len(healthy) == len(current)
    return Progress(done, None, len(healthy), summary)


def _events(task: Mapping[str, Any]) -> str:
    shown = [f"{e.get('Type')}: {e.get('DisplayMessage') or e.get('Message') or ''}".rstrip(": ")
             for e in (task.get("Events") or [])[-EVENTS_SHOWN:]]
    return "; ".join(shown)


def describe_allocs(allocs: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per allocation and per task: status, health and the latest task events."""
    lines: list[str] = []
    for alloc in sorted(allocs, key=lambda a: (a.get("JobVersion", 0), a.get("Name", "")),
                        reverse=True):
        health = (alloc.get("DeploymentStatus") or {}).get("Healthy")
        lines.append(f"  allocation {str(alloc.get('ID', ''))[:8]} {alloc.get('Name', '')} "
                     f"version {alloc.get('JobVersion')} on {alloc.get('NodeName') or '?'}: "
                     f"{alloc.get('ClientStatus')} (desired {alloc.get('DesiredStatus')}), "
                     f"healthy {'?' if health is None else health}")
        for name, task in sorted((alloc.get("TaskStates") or {}).items()):
            lines.append(f"    task {name}: {task.get('State')}, restarts "
                         f"{task.get('Restarts', 0)}; {_events(task)}")
    return lines


def describe_stderr(api: NomadApi, allocs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The last lines of stderr of one failing task (a traceback says more than an exit code)."""
    for alloc in sorted(allocs, key=lambda a: a.get("ModifyIndex", 0), reverse=True):
        if alloc_healthy(alloc):
            continue
        for name, task in sorted((alloc.get("TaskStates") or {}).items()):
            if task.get("State") == "running" and not task.get("Restarts"):
                continue
            lines = api.task_stderr(str(alloc.get("ID")), name).splitlines()[-STDERR_LINES:]
            if lines:
                return [f"  stderr of task {name} in {str(alloc.get('ID'))[:8]}:",
                        *(f"    | {line}" for line in lines)]
    return []


def describe_placement(evals: Sequence[Mapping[str, Any]]) -> list[str]:
    """Why the latest evaluation could not place allocations, if it could not."""
    latest = max(evals, key=lambda e: e.get("ModifyIndex", 0), default=None)
    failed = (latest or {}).get("FailedTGAllocs") or {}
    lines = []
    for group, metric in sorted(failed.items()):
        reasons = {**(metric.get("ConstraintFiltered") or {}),
                   **(metric.get("DimensionExhausted") or {}),
                   **(metric.get("ClassFiltered") or {})}
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())) or "no reason given"
        lines.append(f"  group {group}: not placed ({metric.get('NodesEvaluated', 0)} nodes "
                     f"evaluated, {metric.get('NodesAvailable') or {}} available; {detail})")
    return lines


# ---------------------------------------------------------------------------------------------
# Waiting on Nomad.


def wait_healthy(api: NomadApi, job_id: str, version: int, registration: Mapping[str, Any],
                 timeout: float, poll: float = POLL_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> int:
    """Wait until `version` of the job is healthy; return its healthy allocations.

    `registration`: Nomad's reply to the registration. Its evaluation settles what the
    registration changes. An unchanged spec makes no new deployment: the version's older
    one then counts while it runs or if it succeeded, but its failure is history (what
    counts then is the allocations).
    """
    deadline = clock() + timeout
    eval_id = str(registration.get("EvalID") or "")
    since = int(registration.get("EvalCreateIndex") or 0)
    settled = not eval_id
    while True:
        if not settled:
            evaluation = api.evaluation(eval_id) or {}
            settled = evaluation.get("Status") not in ("pending", None)
            if evaluation.get("Status") == "failed":
                raise NomadJobError(f"job {job_id}: evaluation {eval_id[:8]} failed: "
                                    f"{evaluation.get('StatusDescription', '')}")
        job = api.job(job_id)
        if job is None:
            raise NomadJobError(f"job {job_id} vanished while waiting for it to get healthy")
        deployment = api.deployment(job_id)
        if (deployment is not None and int(deployment.get("CreateIndex") or 0) < since
                and deployment.get("Status") in FAILED_DEPLOYMENT_STATUSES):
            deployment = None
        allocs = api.allocations(job_id)
        progress = assess(job, version, settled, deployment, allocs)
        if progress.done:
            return progress.healthy
        if progress.failed or clock() >= deadline:
            why = progress.failed or f"not healthy after {timeout:g}s"
            raise NomadJobError("\n".join([
                f"job {job_id} version {version} at {api.address}: {why}",
                f"  last state: {progress.summary}",
                *describe_allocs(allocs), *describe_stderr(api, allocs),
                *describe_placement(api.evaluations(job_id)),
                f"  more: NOMAD_ADDR={api.address} nomad job status {job_id}"]))
        sleep(poll)


def wait_stopped(api: NomadApi, job_id: str, alloc_ids: Sequence[str], timeout: float,
                 poll: float = POLL_SECONDS, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """Wait until each of the allocations has stopped (or is gone)."""
    deadline = clock() + timeout
    while True:
        allocs = [a for a in (api.allocation(i) for i in alloc_ids) if a is not None]
        running = [a for a in allocs if not alloc_finished(a)]
        if not running:
            return
        if clock() >= deadline:
            raise NomadJobError("\n".join([
                f"job {job_id} at {api.address}: deregistered, but {len(running)} allocation(s) "
                f"still not stopped after {timeout:g}s", *describe_allocs(running)]))
        sleep(poll)


# ---------------------------------------------------------------------------------------------
# The provider.


def _settings(props: Mapping[str, Any]) -> tuple[str, bool, float, bool]:
    return (str(props["address"]), bool(props.get("wait_healthy", True)),
            float(props.get("timeout", DEFAULT_TIMEOUT)), bool(props.get("purge_on_delete", True)))


def deploy(props: Mapping[str, Any]) -> dict[str, Any]:
    """Parse, register and (optionally) wait: the outputs of a create or an update."""
    address, wait, timeout, _ = _settings(props)
    api = _connect(props)
    job = api.parse(str(props["hcl"]), props.get("variables") or {})
    reply = api.register(job)
    warnings = str(reply.get("Warnings") or "").strip()
    live = api.job(job["ID"])
    if live is None:
        raise NomadJobError(f"job {job['ID']} is not at {address} right after registering it")
    version = int(live["Version"])
    healthy = wait_healthy(api, job["ID"], version, reply, timeout) if wait else 0
    outs = {key: props[key] for key in ("name", "hcl", "variables", "ca_pem", "token", *SETTINGS)
            if key in props}
    return {**outs, "job_id": job["ID"], "job_version": version,
            "job_modify_index": int(live.get("JobModifyIndex") or 0),
            "healthy_allocations": healthy, "spec_hash": spec_hash(job),
            "warnings": warnings}


def _unknown(value: object) -> bool:
    """An input a preview does not know yet (the output of a step that will run): the dynamic
    provider's Diff deserializes it as an Unknown, never as a value."""
    return isinstance(value, pulumi.output.Unknown)


class NomadJobProvider(dynamic.ResourceProvider):
    """CRUD of one Nomad job; the work is done by this module's functions."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        failures = []
        address = news.get("address")
        if isinstance(address, str) and not address.startswith(("http://", "https://")):
            failures.append(dynamic.CheckFailure("address", f"{address!r} is not a Nomad HTTP API "
                                                 "URL such as http://10.210.1.10:4646"))
        hcl = news.get("hcl")
        if isinstance(hcl, str) and not hcl.strip():
            failures.append(dynamic.CheckFailure("hcl", "the job file is empty"))
        timeout = news.get("timeout")
        if isinstance(timeout, int | float) and timeout <= 0:
            failures.append(dynamic.CheckFailure("timeout", f"must be positive, got {timeout}"))
        return dynamic.CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        outs = deploy(props)
        return dynamic.CreateResult(outs["job_id"], outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        if any(_unknown(news.get(key)) for key in ("hcl", "address")):
            return dynamic.DiffResult(changes=True)
        settings_changed = any(olds.get(key) != news.get(key) for key in SETTINGS)
        # A token or CA still to be made by a step of this run (in a preview, a step that will
        # update): parsing the job asks nothing the ones in the state cannot.
        credentials = {key: olds.get(key) for key in ("token", "ca_pem") if _unknown(news.get(key))}
        try:
            job = _connect({**news, **credentials}).parse(str(news["hcl"]), news.get("variables") or {})
        except NomadUnreachableError:
            # No cluster yet (or not reachable from here): fall back to the text.
            return dynamic.DiffResult(changes=settings_changed or any(
                olds.get(key) != news.get(key) for key in ("hcl", "variables")))
        if job["ID"] != olds.get("job_id"):
            return dynamic.DiffResult(changes=True, replaces=["hcl"], delete_before_replace=False)
        changed = spec_hash(job) != olds.get("spec_hash")
        return dynamic.DiffResult(changes=settings_changed or changed)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(deploy(news))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        _, _, timeout, purge = _settings(props)
        api = _connect(props)
        if api.job(id_) is None:
            return
        alloc_ids = [a["ID"] for a in api.allocations(id_) if not alloc_finished(a)]
        api.deregister(id_, purge=purge)
        wait_stopped(api, id_, alloc_ids, timeout)

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        api = _connect(props)
        job = api.job(id_)
        if job is None or job.get("Stop"):
            return dynamic.ReadResult("", {})
        version = int(job["Version"])
        allocs = api.allocations(id_)
        healthy = sum(1 for a in allocs if a.get("JobVersion") == version and alloc_healthy(a))
        outs = {**props, "job_id": id_, "job_version": version,
                "job_modify_index": int(job.get("JobModifyIndex") or 0),
                "healthy_allocations": healthy}
        if props.get("job_version") not in (None, version):
            # Changed behind Pulumi's back (or rolled back): the next diff shows a change.
            outs["spec_hash"] = f"changed outside Pulumi: now version {version}"
        return dynamic.ReadResult(id_, outs)


class NomadJob(dynamic.Resource, module="nomad", name="Job"):
    """A Nomad job, registered from its HCL and (by default) waited on until healthy."""

    job_id: pulumi.Output[str]
    job_version: pulumi.Output[int]
    job_modify_index: pulumi.Output[int]
    healthy_allocations: pulumi.Output[int]
    spec_hash: pulumi.Output[str]
    warnings: pulumi.Output[str]

    def __init__(self, name: str, hcl: pulumi.Input[str], address: pulumi.Input[str],
                 wait_healthy: bool = True, timeout: float = DEFAULT_TIMEOUT,
                 purge_on_delete: bool = True, ca_pem: pulumi.Input[str] | None = None,
                 token: pulumi.Input[str] | None = None,
                 variables: Mapping[str, pulumi.Input[str]] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {
            "name": name, "hcl": hcl, "address": address, "ca_pem": ca_pem, "token": token,
            "variables": dict(variables or {}),
            "wait_healthy": wait_healthy,
            "timeout": timeout, "purge_on_delete": purge_on_delete,
            **{key: None for key in (*OUTPUTS, "warnings")},
        }
        super().__init__(NomadJobProvider(), name, props, opts)
