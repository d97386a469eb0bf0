;; A plugin whose trellis_handle has the wrong type.
(module
  (memory (export "memory") 1)
  (func (export "trellis_abi_v1"))
  (func (export "trellis_handle") (param i32) (result i32) (i32.const 0)))
