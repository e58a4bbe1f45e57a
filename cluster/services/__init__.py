"""Steps run on machines over SSH, as pulumi-command resources."""
