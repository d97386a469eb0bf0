package plugin

import (
	"context"
	"fmt"

	"github.com/tetratelabs/wazero/api"

	"github.com/trellis-mesh/trellis/abi"
)

// PolicyResult is how a policy call that did not fault ended.
type PolicyResult struct {
	// Status is 0 to let the message go on, else the status to reject it with.
	Status int32
	// Error is the rejection's reason (the error host function's text).
	Error string
	// Replied reports that the policy answered the message itself.
	Replied bool
	// Subject, if set, is where the message should go instead of the handler.
	Subject string
}

// Response is a response on its way back through a policy chain.
type Response struct {
	// Status is 0 for a success, else the error status.
	Status int32
	Header map[string][]string
	Data   []byte
}

// IsPolicy reports whether the module exports trellis_policy.
func (p *Plugin) IsPolicy() bool { return p.hasPolicy }

// IsHandler reports whether the module exports trellis_handle.
func (p *Plugin) IsHandler() bool { return p.hasHandle }

// HasResponsePhase reports whether the policy exports trellis_policy_response.
func (p *Plugin) HasResponsePhase() bool { return p.hasResponse }

// Policy runs the policy on msg. Header and Data of msg change in place when
// the policy sets them; RespHeader collects its response headers. Faults are
// returned as *Fault, as from Handle; deciding whether a faulty policy fails
// closed or open is the caller's business.
func (p *Plugin) Policy(ctx context.Context, msg *Message) (PolicyResult, error) {
	if !p.hasPolicy {
		return PolicyResult{}, fmt.Errorf("plugin %q does not export %s", p.name, abi.ExportPolicy)
	}
	var res PolicyResult
	err := p.call(ctx, msg, phasePolicy, func(in *instance) api.Function {
		in.headers = abi.AppendHeaders(in.headers[:0], msg.Header)
		in.stack[0] = uint64(len(msg.Subject))
		in.stack[1] = uint64(len(msg.Reply))
		in.stack[2] = uint64(len(in.headers))
		in.stack[3] = uint64(len(msg.Data))
		return in.policy
	}, func(in *instance) {
		res = PolicyResult{Status: api.DecodeI32(in.stack[0]), Replied: in.replied, Subject: in.target}
		if res.Status != 0 {
			res.Error = in.errorText(res.Status)
		}
	})
	return res, err
}

// PolicyResponse runs the policy's response phase on resp, which it may
// change. msg is the request the response answers.
func (p *Plugin) PolicyResponse(ctx context.Context, msg *Message, resp *Response) (PolicyResult, error) {
	if !p.hasResponse {
		return PolicyResult{}, nil
	}
	var res PolicyResult
	err := p.call(ctx, msg, phaseResponse, func(in *instance) api.Function {
		in.headers = abi.AppendHeaders(in.headers[:0], msg.Header) // the request's, for read(HEADERS)
		in.resp = resp
		in.resHdr = abi.AppendHeaders(in.resHdr[:0], resp.Header)
		in.stack[0] = api.EncodeI32(resp.Status)
		in.stack[1] = uint64(len(in.resHdr))
		in.stack[2] = uint64(len(resp.Data))
		return in.respond
	}, func(in *instance) {
		res = PolicyResult{Status: api.DecodeI32(in.stack[0])}
		if res.Status != 0 {
			res.Error = in.errorText(res.Status)
		}
	})
	return res, err
}

func (in *instance) errorText(status int32) string {
	if len(in.errText) > 0 {
		return string(in.errText)
	}
	return fmt.Sprintf("policy returned %d", status)
}
