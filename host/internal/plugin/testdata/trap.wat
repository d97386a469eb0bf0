;; A handler that traps on every message (unreachable).
(module
  (import "trellis" "reply" (func $reply (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "error" (func $error (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "trellis_abi_v1"))
  (func (export "trellis_handle") (param i32 i32 i32 i32) (result i32)
    unreachable))
