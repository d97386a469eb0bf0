;; A handler on "slow" that says it started (a publish on "slow.started")
;; and then loops until its deadline: a call that stays in flight, for the
;; CLI's shutdown tests.
(module
  (import "trellis" "subscribe" (func $subscribe (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "publish"   (func $publish (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "slow")
  (data (i32.const 32) "slow.started")
  (func (export "trellis_abi_v1"))
  (func (export "trellis_init") (result i32)
    (i32.sub (i32.const 0)
      (call $subscribe (i32.const 16) (i32.const 4) (i32.const 0) (i32.const 0))))
  (func (export "trellis_handle") (param i32 i32 i32 i32) (result i32)
    (drop (call $publish (i32.const 32) (i32.const 12) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
    (loop $forever (br $forever))
    (i32.const 0)))
