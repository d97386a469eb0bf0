package host

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/host/internal/plugin"
)

// natsOutbox sends what plugins send on the host's connection. nats.go
// copies a message into its write buffer before Publish returns, so guest
// memory is never held.
type natsOutbox struct {
	nc *nats.Conn
	h  *Host
}

// Publish publishes a plugin's event. To a subject a durable handler's
// stream holds, it waits for JetStream's acknowledgement, so that the
// plugin learns (as an error status) of an event that was not stored.
func (o *natsOutbox) Publish(ctx context.Context, subject string, h map[string][]string, data []byte) error {
	if o.h.stored(subject) {
		return o.h.publishEvent(ctx, &nats.Msg{Subject: subject, Header: nats.Header(h), Data: data})
	}
	if len(h) == 0 {
		return o.nc.Publish(subject, data)
	}
	return o.nc.PublishMsg(&nats.Msg{Subject: subject, Header: nats.Header(h), Data: data})
}

func (o *natsOutbox) Request(ctx context.Context, subject string, h map[string][]string, data []byte, timeout time.Duration) (*plugin.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, err := o.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Header: nats.Header(h), Data: data})
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, plugin.ErrNoResponders
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return nil, plugin.ErrTimeout
	case err != nil:
		return nil, err
	}
	return &plugin.Message{Subject: m.Subject, Header: m.Header, Data: m.Data}, nil
}
