;; A plugin that forgot trellis_handle.
(module
  (memory (export "memory") 1)
  (func (export "trellis_abi_v1")))
