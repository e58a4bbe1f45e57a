"""The lab: systemd-nspawn "machines" on this Linux host, for the `nspawn` machine provider.

`python3 -m lab --help` lists the verbs. Every machine is a copy-on-write overlay over one
cached debootstrap root filesystem, boots systemd as PID 1 and sits in its own network
namespace, attached to a bridge that lives in the lab's "switch" namespace (`hcl-lab`).
Nothing is routed out of the lab: only processes inside `hcl-lab` (see `lab exec`) or the
loopback forwarders (`lab forward`) reach the machines.
"""
