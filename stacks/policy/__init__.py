"""CrossGuard policy pack for this project's stacks (`pulumi preview --policy-pack stacks/policy`)."""
