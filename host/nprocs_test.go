package host_test

import "runtime"

func nprocs() int { return runtime.GOMAXPROCS(0) }
