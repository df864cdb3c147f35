"""netparity harness: backend registry, comparison helper, tolerance policy, CLI."""
