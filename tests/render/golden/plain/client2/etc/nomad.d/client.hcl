# Nomad client. Managed by hashicluster; edits are overwritten.
client {
  enabled = true
  # The interface that carries this node's address (a go-sockaddr template, resolved by
  # Nomad): machines need no default route.
  network_interface = "{{ GetAllInterfaces | include \"address\" \"10.210.1.32\" | attr \"name\" }}"

  # Not a cloud VM: skip the cloud metadata probes (they would reach for 169.254.169.254).
  options {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }
}

# Docker (installed before Nomad on every client): containers unprivileged, no host paths
# mounted into them; each container labelled with its job, group and task (cAdvisor shows them).
plugin "docker" {
  config {
    allow_privileged = false
    volumes {
      enabled = false
    }
    extra_labels = ["job_name", "task_group_name", "task_name", "namespace", "node_name"]
  }
}

# raw_exec runs tasks as root without isolation: on only when a job of the stack's list uses
# it (jobs/fib-raw-exec.nomad.hcl does).
plugin "raw_exec" {
  config {
    enabled = false
  }
}
