// Command conformance is the Go SDK's implementation of the Trellis
// conformance plugin: the behaviours that host/conformance runs against
// every SDK. It subscribes to "conf.>" and acts on the last token:
//
//	conf.echo     reply with the payload
//	conf.headers  reply with the value of header X-In as payload, and headers
//	              X-Out (the same value) and X-Subject (the subject)
//	conf.publish  publish the payload to published.conf with header
//	              X-From: conformance, reply "ok"
//	conf.request  request upstream.conf with the payload (500 ms timeout) and
//	              reply "upstream:" + the response; on timeout or no responders
//	              fail with 504 "upstream: timeout" / "upstream: no responders"
//	conf.log      log "level N: <payload>" at levels 1..5, reply "ok"
//	conf.error    fail with 422 "rejected: <payload>"
//	conf.config   reply with the config value named by the payload, or fail
//	              with 404 "no config key <payload>"
//	conf.trap     trap (here: a Go panic)
package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

func init() {
	trellis.Handle("conf.>", handle)
}

func handle(m *trellis.Msg) ([]byte, error) {
	switch m.Subject[strings.LastIndexByte(m.Subject, '.')+1:] {
	case "echo":
		return m.Data, nil
	case "headers":
		in := m.Header.Get("X-In")
		h := trellis.Header{}
		h.Set("X-Out", in)
		h.Set("X-Subject", m.Subject)
		return nil, m.RespondMsg(h, []byte(in))
	case "publish":
		h := trellis.Header{}
		h.Set("X-From", "conformance")
		if err := trellis.PublishMsg("published.conf", h, m.Data); err != nil {
			return nil, trellis.Errorf(500, "publish: %v", err)
		}
		return []byte("ok"), nil
	case "request":
		resp, err := trellis.Request("upstream.conf", m.Data, 500*time.Millisecond)
		switch {
		case errors.Is(err, trellis.ErrTimeout):
			return nil, trellis.Errorf(504, "upstream: timeout")
		case errors.Is(err, trellis.ErrNoResponders):
			return nil, trellis.Errorf(504, "upstream: no responders")
		case err != nil:
			return nil, trellis.Errorf(500, "upstream: %v", err)
		}
		return append([]byte("upstream:"), resp.Data...), nil
	case "log":
		for level := trellis.LevelTrace; level <= trellis.LevelError; level++ {
			trellis.Log(level, fmt.Sprintf("level %d: %s", level, m.Data))
		}
		return []byte("ok"), nil
	case "error":
		return nil, trellis.Errorf(422, "rejected: %s", m.Data)
	case "config":
		v, ok := trellis.Config(string(m.Data))
		if !ok {
			return nil, trellis.Errorf(404, "no config key %s", m.Data)
		}
		return []byte(v), nil
	case "trap":
		panic("conformance: trap requested")
	}
	return nil, trellis.Errorf(404, "unknown behaviour %s", m.Subject)
}

func main() {}
