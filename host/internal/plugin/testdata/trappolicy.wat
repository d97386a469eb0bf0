;; A policy that traps on every message: its handlers' messages are refused
;; with "policy NAME failed" (ABI.md section 5a).
(module
  (memory (export "memory") 1)
  (func (export "trellis_abi_v1"))
  (func (export "trellis_policy") (param i32 i32 i32 i32) (result i32)
    unreachable))
