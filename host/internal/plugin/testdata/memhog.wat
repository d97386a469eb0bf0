;; A handler that tries to grow its memory by 64 pages (4 MiB) and
;; replies "grown" or "refused".
(module
  (import "trellis" "reply" (func $reply (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "error" (func $error (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "trellis_abi_v1"))
  (data (i32.const 0) "grownrefused")
  (func (export "trellis_handle") (param i32 i32 i32 i32) (result i32)
    (if (i32.eq (memory.grow (i32.const 64)) (i32.const -1))
      (then (drop (call $reply (i32.const 0) (i32.const 0) (i32.const 5) (i32.const 7))))
      (else (drop (call $reply (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 5)))))
    (i32.const 0)))
