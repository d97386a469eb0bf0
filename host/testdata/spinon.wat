;; A handler that echoes its payload, except an empty one: for that it spins
;; until its deadline stops it. The direct dispatch tests use it to turn a
;; fast handler slow on demand.
(module
  (import "trellis" "read"  (func $read (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "reply" (func $reply (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "trellis_abi_v1"))
  (func (export "trellis_handle")
        (param $subject_len i32) (param $reply_len i32) (param $headers_len i32) (param $data_len i32)
        (result i32)
    (if (i32.eqz (local.get $data_len))
      (then (loop $forever (br $forever))))
    (if (i32.gt_u (local.get $data_len) (i32.const 60000))
      (then (return (i32.const 413))))
    (drop (call $read (i32.const 3) (i32.const 0) (i32.const 1024) (local.get $data_len)))
    (drop (call $reply (i32.const 0) (i32.const 0) (i32.const 1024) (local.get $data_len)))
    (i32.const 0)))
