;; A plugin whose trellis_init refuses to start.
(module
  (import "trellis" "reply" (func $reply (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "error" (func $error (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "trellis_abi_v1"))
  (data (i32.const 0) "missing config key 'token'")
  (func (export "trellis_init") (result i32)
    (drop (call $error (i32.const 0) (i32.const 26)))
    (i32.const 3))
  (func (export "trellis_handle") (param i32 i32 i32 i32) (result i32) (i32.const 0)))
