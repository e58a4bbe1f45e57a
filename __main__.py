"""hashicluster: a Nomad + Consul cluster from one `pulumi up`. See README.md."""

from cluster.program import main

main()
