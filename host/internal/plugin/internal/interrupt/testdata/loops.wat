;; Functions whose results depend on their loops running exactly as
;; written, plus two that never return: the interrupt package's fixture.
;; Build with: wat2wasm --enable-tail-call loops.wat
(module
  (import "env" "base" (global $base i32))
  (global $calls (mut i32) (i32.const 0))
  (memory (export "memory") 1)
  (type $pair (func (param i32 i32) (result i32 i32)))

  ;; sum 1..n with a loop and br_if
  (func (export "sum") (param $n i32) (result i32)
    (local $acc i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $acc (i32.add (local.get $acc) (local.get $n)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (i32.add (local.get $acc) (global.get $base)))

  ;; a loop with parameters and two results: fibonacci by (a, b) -> (b, a+b)
  (func (export "fib") (param $n i32) (result i32)
    (i32.const 0) (i32.const 1)
    (loop $step (type $pair)
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (call $swap_add)
      (br_if $step (i32.gt_s (local.get $n) (i32.const 0))))
    (drop))
  (func $swap_add (param $a i32) (param $b i32) (result i32 i32)
    (local.get $b) (i32.add (local.get $a) (local.get $b)))

  ;; nested loops and a br_table: counts i*j pairs with (i+j) mod 3 == 0
  (func (export "grid") (param $n i32) (result i32)
    (local $i i32) (local $j i32) (local $count i32)
    (loop $rows
      (local.set $j (i32.const 0))
      (loop $cols
        (block $skip
          (block $hit
            (br_table $hit $skip $skip
              (i32.rem_u (i32.add (local.get $i) (local.get $j)) (i32.const 3))))
          (local.set $count (i32.add (local.get $count) (i32.const 1))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $cols (i32.lt_u (local.get $j) (local.get $n))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $rows (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $count))

  ;; a memory loop with bulk memory and SIMD around it
  (func (export "fill") (param $n i32) (result i32)
    (local $i i32) (local $sum i32)
    (memory.fill (i32.const 0) (i32.const 7) (local.get $n))
    (v128.store (i32.const 1024) (v128.const i32x4 1 2 3 4))
    (loop $add
      (local.set $sum (i32.add (local.get $sum) (i32.load8_u (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $add (i32.lt_u (local.get $i) (local.get $n))))
    (i32.add (local.get $sum) (i32x4.extract_lane 3 (v128.load (i32.const 1024)))))

  (func (export "calls") (result i32) (global.get $calls))

  ;; a table of functions called indirectly, and a funcref global: their
  ;; function indexes move when the check is imported
  (table 3 funcref)
  (elem (i32.const 0) $double $triple $square)
  (global $sq funcref (ref.func $square))
  (func $double (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))
  (func $triple (param i32) (result i32) (i32.mul (local.get 0) (i32.const 3)))
  (func $square (param i32) (result i32) (i32.mul (local.get 0) (local.get 0)))
  (func (export "indirect") (param $x i32) (result i32)
    ;; double(x) + triple(x) + square(x) + 1000 * started
    (i32.add
      (i32.add
        (call_indirect (param i32) (result i32) (local.get $x) (i32.const 0))
        (call_indirect (param i32) (result i32) (local.get $x) (i32.const 1)))
      (i32.add
        (call_indirect (param i32) (result i32) (local.get $x) (i32.const 2))
        (i32.mul (global.get $started) (i32.const 1000)))))

  ;; the start function: it must still be the one that runs
  (global $started (mut i32) (i32.const 0))
  (func $start (global.set $started (i32.const 1)))
  (start $start)

  ;; never return: a plain loop, and a tail call to itself
  (func $spin_forever (export "spin") (loop $forever (br $forever)))
  (func $tailspin (export "tailspin") (return_call $tailspin)))
