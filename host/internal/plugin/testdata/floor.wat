;; The bare wazero round trip the dispatch benchmark is measured against:
;; a guest export that calls one host function, which reads 5 bytes of
;; guest memory. Not a Trellis plugin.
(module
  (import "env" "touch" (func $touch (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "hello")
  (func (export "run") (result i32)
    (call $touch (i32.const 0) (i32.const 5))))
