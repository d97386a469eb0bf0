;; A handler that replies from a pointer far outside its 64 KiB memory.
(module
  (import "trellis" "reply" (func $reply (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "error" (func $error (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "trellis_abi_v1"))
  (func (export "trellis_handle") (param i32 i32 i32 i32) (result i32)
    (drop (call $reply (i32.const 0) (i32.const 0) (i32.const 0x7fffff00) (i32.const 256)))
    (i32.const 0)))
