;; A policy that refuses every message with status 418, for the dev loop's
;; policies.txt tests.
(module
  (import "trellis" "error" (func $error (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "denied by policy")
  (func (export "trellis_abi_v1"))
  (func (export "trellis_policy") (param i32 i32 i32 i32) (result i32)
    (drop (call $error (i32.const 16) (i32.const 16)))
    (i32.const 418)))
