package host_test

import (
	"runtime"

	"github.com/nats-io/nats.go"
)

func nprocs() int { return runtime.GOMAXPROCS(0) }

type natsMsg = nats.Msg
