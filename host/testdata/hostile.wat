;; A plugin that attacks the host from inside its grants, for the tests of
;; the host's limits. It serves as a handler and as a policy.
;;
;; trellis_init subscribes to config "sub" with queue config "queue", if
;; "sub" is set, and returns the subscribe status if it fails.
;;
;; trellis_handle acts on the first byte of the message's data and replies
;; 8 bytes: a count (i32, little-endian) and the last host call's result:
;;   p  publish to the subject that follows, once
;;   h  response_header with a 16 KiB value until it fails
;;   l  log 64 KiB until it fails
;;   P  publish an empty message to audit.x until it fails
;;   B  publish 1 MiB to audit.x until it fails
;;   Q  request nobody (no responders) until it fails with too large (11)
;;   f  publish the message's subject to "seen"
;; and, 256 times each whatever the result:
;;   r  read 60000 bytes of data    H  look up a header into 16 KiB
;;   c  read a config value          e  set a 64 KiB error text
;;   k  kv_set 1 KiB under one key
;; trellis_policy, on data starting with S, grows its memory to 32 MiB and
;; calls set_data with all of it until the deadline stops it.
(module
  (import "trellis" "read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "reply" (func $reply (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "publish" (func $publish (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "trellis" "request" (func $request (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "trellis" "log" (func $log (param i32 i32 i32) (result i32)))
  (import "trellis" "config" (func $config (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "subscribe" (func $subscribe (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "response_header" (func $response_header (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "set_data" (func $set_data (param i32 i32) (result i32)))
  (import "trellis" "header" (func $header (param i32 i32 i32 i32) (result i32)))
  (import "trellis" "error" (func $error (param i32 i32) (result i32)))
  (import "trellis" "kv_set" (func $kv_set (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 32)
  (func (export "trellis_abi_v1"))

  (data (i32.const 0) "sub")
  (data (i32.const 8) "queue")
  (data (i32.const 16) "X-A")
  (data (i32.const 24) "audit.x")
  (data (i32.const 32) "nobody")
  (data (i32.const 40) "seen")
  (data (i32.const 48) "k")

  ;; 1024: subject buffer, 9216: queue buffer, 65536: message data,
  ;; 131072: 64 KiB of 'a', 200000: the reply.
  (func (export "trellis_init") (result i32)
    (local $i i32) (local $n i32) (local $q i32) (local $s i32)
    (local.set $i (i32.const 131072))
    (block $done
      (loop $fill
        (br_if $done (i32.ge_u (local.get $i) (i32.const 196608)))
        (i32.store8 (local.get $i) (i32.const 97))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $fill)))
    (local.set $n (call $config (i32.const 0) (i32.const 3) (i32.const 1024) (i32.const 8192)))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.const 0))))
    (local.set $q (call $config (i32.const 8) (i32.const 5) (i32.const 9216) (i32.const 8192)))
    (if (i32.lt_s (local.get $q) (i32.const 0)) (then (local.set $q (i32.const 0))))
    (local.set $s (call $subscribe (i32.const 1024) (local.get $n) (i32.const 9216) (local.get $q)))
    (if (i32.lt_s (local.get $s) (i32.const 0)) (then (return (i32.sub (i32.const 0) (local.get $s)))))
    (i32.const 0))

  (func (export "trellis_handle") (param $sl i32) (param $rl i32) (param $hl i32) (param $dl i32) (result i32)
    (local $n i32) (local $r i32) (local $count i32) (local $op i32)
    (local.set $n (call $read (i32.const 3) (i32.const 0) (i32.const 65536) (i32.const 60000)))
    (if (i32.lt_s (local.get $n) (i32.const 1)) (then (return (i32.const 0))))
    (local.set $op (i32.load8_u (i32.const 65536)))
    (block $out
      (if (i32.eq (local.get $op) (i32.const 112)) ;; p
        (then
          (local.set $r (call $publish (i32.const 65537) (i32.sub (local.get $n) (i32.const 1))
            (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
          (br $out)))
      (if (i32.eq (local.get $op) (i32.const 102)) ;; f
        (then
          (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1024) (i32.const 8192)))
          (local.set $r (call $publish (i32.const 40) (i32.const 4) (i32.const 0) (i32.const 0)
            (i32.const 1024) (local.get $sl)))
          (br $out)))
      (loop $again
        (if (i32.eq (local.get $op) (i32.const 104)) ;; h
          (then (local.set $r (call $response_header (i32.const 16) (i32.const 3) (i32.const 131072) (i32.const 16384)))))
        (if (i32.eq (local.get $op) (i32.const 108)) ;; l
          (then (local.set $r (call $log (i32.const 3) (i32.const 131072) (i32.const 65536)))))
        (if (i32.eq (local.get $op) (i32.const 80)) ;; P
          (then (local.set $r (call $publish (i32.const 24) (i32.const 7) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))))
        (if (i32.eq (local.get $op) (i32.const 66)) ;; B
          (then (local.set $r (call $publish (i32.const 24) (i32.const 7) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1048576)))))
        (if (i32.eq (local.get $op) (i32.const 81)) ;; Q
          (then
            (local.set $r (call $request (i32.const 32) (i32.const 6) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000)))
            (br_if $out (i32.eq (local.get $r) (i32.const -11)))
            (local.set $count (i32.add (local.get $count) (i32.const 1)))
            (br $again)))
        (if (i32.or (i32.or (i32.eq (local.get $op) (i32.const 114)) (i32.eq (local.get $op) (i32.const 72)))
                    (i32.or (i32.or (i32.eq (local.get $op) (i32.const 99)) (i32.eq (local.get $op) (i32.const 101)))
                            (i32.eq (local.get $op) (i32.const 107))))
          (then
            (br_if $out (i32.ge_u (local.get $count) (i32.const 256)))
            (if (i32.eq (local.get $op) (i32.const 114)) ;; r
              (then (local.set $r (call $read (i32.const 3) (i32.const 0) (i32.const 65536) (i32.const 60000)))))
            (if (i32.eq (local.get $op) (i32.const 72)) ;; H
              (then (local.set $r (call $header (i32.const 16) (i32.const 3) (i32.const 131072) (i32.const 16384)))))
            (if (i32.eq (local.get $op) (i32.const 99)) ;; c
              (then (local.set $r (call $config (i32.const 0) (i32.const 3) (i32.const 1024) (i32.const 8192)))))
            (if (i32.eq (local.get $op) (i32.const 101)) ;; e
              (then (local.set $r (call $error (i32.const 131072) (i32.const 65536)))))
            (if (i32.eq (local.get $op) (i32.const 107)) ;; k
              (then (local.set $r (call $kv_set (i32.const 48) (i32.const 1) (i32.const 131072) (i32.const 1024) (i32.const 0)))))
            (local.set $count (i32.add (local.get $count) (i32.const 1)))
            (br $again)))
        (br_if $out (i32.lt_s (local.get $r) (i32.const 0)))
        (local.set $count (i32.add (local.get $count) (i32.const 1)))
        (br $again)))
    (i32.store (i32.const 200000) (local.get $count))
    (i32.store (i32.const 200004) (local.get $r))
    (drop (call $reply (i32.const 0) (i32.const 0) (i32.const 200000) (i32.const 8)))
    (i32.const 0))

  (func (export "trellis_policy") (param i32 i32 i32 i32) (result i32)
    (drop (call $read (i32.const 3) (i32.const 0) (i32.const 65536) (i32.const 1)))
    (if (i32.ne (i32.load8_u (i32.const 65536)) (i32.const 83)) (then (return (i32.const 0))))
    (drop (memory.grow (i32.const 480)))
    (loop $spin
      (br_if $spin (i32.ge_s (call $set_data (i32.const 0) (i32.const 33554432)) (i32.const 0))))
    (i32.const 0)))
