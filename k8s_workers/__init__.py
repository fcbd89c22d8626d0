"""The pure core of k8s-workers, no Pulumi import: `config` (the stack's typed configuration, every
error by key path), `render` (the text of every file from templates/), `scripts` (what each node's
install and removal do, and the exact shell), `decisions` (which CSRs to approve, ...), and
`cluster_api`, the thin adapter for what pulumi-kubernetes does not do."""
