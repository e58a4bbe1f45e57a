"""The hashicluster Pulumi program's library: config, topology, machines and services."""
