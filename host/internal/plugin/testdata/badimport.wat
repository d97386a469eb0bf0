;; A plugin that imports a host function the host does not have.
(module
  (import "trellis" "teleport" (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "trellis_abi_v1"))
  (func (export "trellis_handle") (param i32 i32 i32 i32) (result i32) (i32.const 0)))
