//! The end-to-end tests' kit: the stack launcher and the protocol client,
//! from `warren-test-support` (shared with the broker-restart test and the
//! benches).

pub(crate) use warren_test_support::stack::*;
