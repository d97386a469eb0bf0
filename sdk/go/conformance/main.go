// Command conformance is the Go SDK's implementation of the Trellis
// conformance plugin: the behaviours that host/internal/conformance runs against
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
//	conf.kv       payload "key=value": kv_set(key, value, no TTL), then reply
//	              with kv_get(key); "incr:key": kv_incr(key, 1) twice, reply
//	              with the second result in decimal; "cas:key": kv_cas(key,
//	              absent, "first"), then kv_cas(key, absent, "second"), which
//	              must fail with CONFLICT: reply "conflict", else fail with 500
//	conf.respheader  response_header("X-Resp", "yes"), reply "ok"
//	conf.replyto  (Go only) reply with the message's reply subject
//
// The same module is a policy (trellis_policy), acting on the message's
// header X-Policy:
//
//	absent, "allow"  continue
//	"reject"         reject with 403 "rejected by conformance policy"
//	"answer"         reply "answered by conformance policy"
//	"header"         set header X-In: from-policy, continue
//	"route"          send the message to conf.echo, continue
//	"data"           replace the payload with "replaced", continue
//	"http"           for an HTTP request, replace the payload with
//	                 "<method> <path>?<query> from <remote address>" and
//	                 continue; a NATS message goes on unchanged
//	anything else    reject with 400 "unknown policy action <value>"
//
// and its response phase (trellis_policy_response) appends " [response]" to
// a successful response's payload when the request has X-Response: append.
//
// The file builds only for wasip1: the response phase reads the request's
// header with the raw header host function, which the SDK does not wrap.
package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

func init() {
	trellis.Handle("conf.>", handle)
	trellis.Policy(policy)
	trellis.PolicyResponse(respond)
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
	case "kv":
		return kv(string(m.Data))
	case "replyto":
		return []byte(m.Reply()), nil
	case "respheader":
		if err := trellis.ResponseHeader("X-Resp", "yes"); err != nil {
			return nil, trellis.Errorf(500, "response_header: %v", err)
		}
		return []byte("ok"), nil
	}
	return nil, trellis.Errorf(404, "unknown behaviour %s", m.Subject)
}

func kv(payload string) ([]byte, error) {
	if key, ok := strings.CutPrefix(payload, "incr:"); ok {
		n, err := trellis.KVIncr(key, 1, 0)
		if err == nil {
			n, err = trellis.KVIncr(key, 1, 0)
		}
		if err != nil {
			return nil, trellis.Errorf(500, "kv incr: %v", err)
		}
		return strconv.AppendInt(nil, n, 10), nil
	}
	if key, ok := strings.CutPrefix(payload, "cas:"); ok {
		if err := trellis.KVCompareAndSet(key, nil, []byte("first"), 0); err != nil {
			return nil, trellis.Errorf(500, "kv cas: %v", err)
		}
		err := trellis.KVCompareAndSet(key, nil, []byte("second"), 0)
		switch {
		case errors.Is(err, trellis.ErrConflict):
			return []byte("conflict"), nil
		case err != nil:
			return nil, trellis.Errorf(500, "kv cas: %v", err)
		}
		return nil, trellis.Errorf(500, "kv cas: the second compare-and-set did not conflict")
	}
	key, value, ok := strings.Cut(payload, "=")
	if !ok {
		return nil, trellis.Errorf(400, "kv: the payload is not key=value, incr:key or cas:key")
	}
	if err := trellis.KVSet(key, []byte(value), 0); err != nil {
		return nil, trellis.Errorf(500, "kv set: %v", err)
	}
	v, err := trellis.KVGet(key)
	if err != nil {
		return nil, trellis.Errorf(500, "kv get: %v", err)
	}
	return v, nil
}

func policy(r *trellis.Inbound) trellis.Decision {
	switch action := r.Header.Get("X-Policy"); action {
	case "", "allow":
		return trellis.Continue
	case "reject":
		return trellis.Reject(403, "rejected by conformance policy")
	case "answer":
		d, err := r.Answer([]byte("answered by conformance policy"))
		if err != nil {
			return trellis.Reject(500, "reply: "+err.Error())
		}
		return d
	case "header":
		return decide("set_header", r.SetHeader("X-In", "from-policy"))
	case "route":
		return decide("set_subject", r.Route("conf.echo"))
	case "data":
		return decide("set_data", r.SetData([]byte("replaced")))
	case "http":
		if r.Method == "" {
			return trellis.Continue
		}
		return decide("set_data", r.SetData([]byte(r.Method+" "+r.Path+"?"+r.Query+" from "+r.RemoteAddr)))
	default:
		return trellis.Reject(400, "unknown policy action "+action)
	}
}

// decide continues after a host call that worked and rejects with 500
// "<call>: <err>" after one that failed.
func decide(call string, err error) trellis.Decision {
	if err != nil {
		return trellis.Reject(500, call+": "+err.Error())
	}
	return trellis.Continue
}

func respond(resp *trellis.Response) trellis.Decision {
	if resp.Status != 0 || resp.Request.Header.Get("X-Response") != "append" {
		return trellis.Continue
	}
	return decide("set_data", resp.SetData(append(resp.Data, " [response]"...)))
}

func main() {}
