"""What the policy pack (policy/) checks, as pure functions over resource properties: plain dicts in,
findings out, no Pulumi import, so every rule is unit-tested without the engine."""
