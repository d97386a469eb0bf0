;; A WASI command (exports _start) instead of a reactor.
(module
  (memory (export "memory") 1)
  (func (export "_start"))
  (func (export "trellis_abi_v1"))
  (func (export "trellis_handle") (param i32 i32 i32 i32) (result i32) (i32.const 0)))
