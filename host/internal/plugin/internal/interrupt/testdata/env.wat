;; The "env" module loops.wat imports its global from.
(module (global (export "base") i32 (i32.const 100)))
