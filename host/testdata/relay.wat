;; A handler that passes its message on: it logs "relaying", reads the key
;; "seen" from its KV namespace, publishes the payload to "trace.next" and
;; replies with it. The tracing tests follow one message through it.
(module
  (import "trellis" "read"    (func $read (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "reply"   (func $reply (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "publish" (func $publish (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "trellis" "log"     (func $log (param i32 i32 i32) (result i32)))
  (import "trellis" "kv_get"  (func $kv_get (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "trace.next")
  (data (i32.const 32) "relaying")
  (data (i32.const 48) "seen")
  (func (export "trellis_abi_v1"))
  (func (export "trellis_handle")
        (param $subject_len i32) (param $reply_len i32) (param $headers_len i32) (param $data_len i32)
        (result i32)
    (if (i32.gt_u (local.get $data_len) (i32.const 4096))
      (then (return (i32.const 413))))
    ;; log level 3 is INFO.
    (drop (call $log (i32.const 3) (i32.const 32) (i32.const 8)))
    (drop (call $read (i32.const 3) (i32.const 0) (i32.const 1024) (local.get $data_len)))
    ;; NOT_FOUND is an answer: the span is not an error.
    (drop (call $kv_get (i32.const 48) (i32.const 4) (i32.const 8192) (i32.const 64)))
    (if (i32.lt_s (call $publish (i32.const 16) (i32.const 10) (i32.const 0) (i32.const 0)
                               (i32.const 1024) (local.get $data_len))
                  (i32.const 0))
      (then (return (i32.const 500))))
    (drop (call $reply (i32.const 0) (i32.const 0) (i32.const 1024) (local.get $data_len)))
    (i32.const 0))
)
