;; A handler that tries to grow a table with no maximum by the payload's
;; first byte times 2^20 elements, and replies "grown" or "refused".
(module
  (import "trellis" "read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "reply" (func $reply (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (func (export "trellis_abi_v1"))
  (data (i32.const 0) "grownrefused")
  (func (export "trellis_handle") (param i32 i32 i32 i32) (result i32)
    (drop (call $read (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 1)))
    (if (i32.eq (table.grow $t (ref.null func) (i32.shl (i32.load8_u (i32.const 16)) (i32.const 20)))
                (i32.const -1))
      (then (drop (call $reply (i32.const 0) (i32.const 0) (i32.const 5) (i32.const 7))))
      (else (drop (call $reply (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 5)))))
    (i32.const 0)))
