;; A handler of "self.>": a message on "self.ask" is answered with what a
;; request to "self.echo" (served by this same handler, on the same
;; subscription) answers; any other is echoed. The direct dispatch tests
;; use it: the request must not wait behind the call that sent it.
(module
  (import "trellis" "read"    (func $read (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "reply"   (func $reply (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "request" (func $request (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "self.echo")
  (func (export "trellis_abi_v1"))
  (func (export "trellis_handle")
        (param $subject_len i32) (param $reply_len i32) (param $headers_len i32) (param $data_len i32)
        (result i32)
    (local $n i32)
    (if (i32.gt_u (local.get $data_len) (i32.const 4096))
      (then (return (i32.const 413))))
    (drop (call $read (i32.const 3) (i32.const 0) (i32.const 1024) (local.get $data_len)))
    ;; SUBJECT (field 0) at 64: "self.ask" has an 'a' at index 5.
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 64) (i32.const 16)))
    (if (i32.and (i32.eq (local.get $subject_len) (i32.const 8))
                 (i32.eq (i32.load8_u (i32.const 69)) (i32.const 97)))
      (then
        (local.set $n (call $request (i32.const 16) (i32.const 9) (i32.const 0) (i32.const 0)
                                     (i32.const 1024) (local.get $data_len) (i32.const 0)))
        (if (i32.lt_s (local.get $n) (i32.const 0))
          (then (return (i32.const 504))))
        (if (i32.gt_u (local.get $n) (i32.const 4096))
          (then (return (i32.const 413))))
        (drop (call $read (i32.const 5) (i32.const 0) (i32.const 8192) (local.get $n)))
        (drop (call $reply (i32.const 0) (i32.const 0) (i32.const 8192) (local.get $n)))
        (return (i32.const 0))))
    (drop (call $reply (i32.const 0) (i32.const 0) (i32.const 1024) (local.get $data_len)))
    (i32.const 0)))
