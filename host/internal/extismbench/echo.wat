;; An echo for Extism, written against its kernel's imports (module
;; "extism:host/env", EIP-007) the way Extism's PDKs use them: the input is
;; read from the kernel's memory 8 bytes at a time (then byte by byte for
;; the tail) into a block the kernel allocates, which becomes the output.
;; Extism's Go PDK is not available here, so this is the guest by hand.
;; Build: wat2wasm echo.wat -o echo.wasm
(module
  (import "extism:host/env" "input_length"   (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "input_load_u8"  (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc"          (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64"      (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "store_u8"       (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set"     (func $output_set (param i64 i64)))

  (func (export "echo") (result i32)
    (local $len i64) (local $out i64) (local $i i64)
    (local.set $len (call $input_length))
    (local.set $out (call $alloc (local.get $len)))
    ;; Whole words.
    (block $words_done
      (loop $words
        (br_if $words_done (i64.gt_u (i64.add (local.get $i) (i64.const 8)) (local.get $len)))
        (call $store_u64 (i64.add (local.get $out) (local.get $i))
                         (call $input_load_u64 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 8)))
        (br $words)))
    ;; The last bytes.
    (block $bytes_done
      (loop $bytes
        (br_if $bytes_done (i64.ge_u (local.get $i) (local.get $len)))
        (call $store_u8 (i64.add (local.get $out) (local.get $i))
                        (call $input_load_u8 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $bytes)))
    (call $output_set (local.get $out) (local.get $len))
    (i32.const 0)))
