;; A plugin built for an ABI version this host does not know.
(module
  (memory (export "memory") 1)
  (func (export "trellis_abi_v2"))
  (func (export "trellis_handle") (param i32 i32 i32 i32) (result i32) (i32.const 0)))
