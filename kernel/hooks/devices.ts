// Test hooks of the device models (tests/unit). See kernel/testhooks.ts.
