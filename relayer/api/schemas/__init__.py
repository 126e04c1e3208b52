"""The HTTP contract (SPEC §5.3): request models (`XRequest`, query models `XQuery`), response
models (`XPublic`), typed path ids and the error schema with each operation's codes."""
