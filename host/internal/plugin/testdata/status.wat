;; A handler that fails every message with status 400 and a description.
(module
  (import "trellis" "reply" (func $reply (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "error" (func $error (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "trellis_abi_v1"))
  (data (i32.const 0) "payload must be JSON")
  (func (export "trellis_handle") (param i32 i32 i32 i32) (result i32)
    (drop (call $error (i32.const 0) (i32.const 20)))
    (i32.const 400)))
