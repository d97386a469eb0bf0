;; The Trellis ABI v1 in raw WebAssembly text, with no SDK: a handler that
;; subscribes to "echo" and replies to every request with its payload.
;; Build: wat2wasm echo.wat -o echo.wasm
(module
  ;; Host functions (ABI.md section 5). Every value is an i32.
  (import "trellis" "read"      (func $read (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "reply"     (func $reply (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "subscribe" (func $subscribe (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "log"       (func $log (param i32 i32 i32) (result i32)))

  ;; One page to start; the payload buffer starts at 1024 and grows as needed.
  (memory (export "memory") 1)
  (data (i32.const 16) "echo")
  (data (i32.const 32) "echo plugin ready")

  ;; The version marker: never called.
  (func (export "trellis_abi_v1"))

  ;; Called once per instance: declare the subject, say hello.
  (func (export "trellis_init") (result i32)
    (drop (call $log (i32.const 2) (i32.const 32) (i32.const 17)))
    ;; subscribe returns 0 or -status; trellis_init returns 0 or a failure code.
    (i32.sub (i32.const 0)
      (call $subscribe (i32.const 16) (i32.const 4) (i32.const 0) (i32.const 0))))

  ;; Called per message with the lengths of subject, reply, headers and data.
  (func (export "trellis_handle")
        (param $subject_len i32) (param $reply_len i32) (param $headers_len i32) (param $data_len i32)
        (result i32)
    (local $need i32)
    (local $r i32)
    ;; Pages needed to hold the payload at offset 1024.
    (local.set $need
      (i32.shr_u (i32.add (i32.add (local.get $data_len) (i32.const 1024)) (i32.const 65535))
                 (i32.const 16)))
    (if (i32.gt_u (local.get $need) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $need) (memory.size))) (i32.const -1))
          (then (return (i32.const 413))))))
    ;; Field 3 is DATA: copy all of it to 1024.
    (drop (call $read (i32.const 3) (i32.const 0) (i32.const 1024) (local.get $data_len)))
    ;; Reply with no headers. -5 (NO_REPLY) just means nobody asked.
    (local.set $r (call $reply (i32.const 0) (i32.const 0) (i32.const 1024) (local.get $data_len)))
    (if (i32.and (i32.lt_s (local.get $r) (i32.const 0)) (i32.ne (local.get $r) (i32.const -5)))
      (then (return (i32.const 500))))
    (i32.const 0))
)
