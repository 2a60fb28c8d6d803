// Test hooks of the guest loader (tests/unit). See kernel/testhooks.ts.
