"""Pure decisions the program takes about the cluster (which CSRs to approve, ...): no Pulumi, no I/O."""
