"""`./run status` (`python3 -m cluster.status`): the cluster's health at a glance.

- health.py: the APIs' answers -> one model (machines, Consul, Nomad, routes, versions,
  drift) and its problems (pure);
- api.py: reading Consul's and Nomad's HTTP APIs with the cluster's CA and a read-only token;
- drift.py: agent_drift(), the drift records of the stack's state;
- tables.py: the human report; cli.py: gathering it all for one stack.
"""
