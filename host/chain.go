package host

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host/internal/deadline"
	"github.com/trellis-mesh/trellis/host/internal/metrics"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/tracing"
)

// outcome is how a message's handling ended, for whoever answers the caller.
// It is returned by value through every layer of a message's path, so what
// only some outcomes carry (a text, headers, a body) is behind a pointer.
type outcome struct {
	status int   // 0: success; else the error status
	ans    *said // nil: no text, headers or body
	sent   bool  // the answer already went out (a plugin replied to the NATS reply subject)
	none   bool  // nobody is to be answered (an event)
	fault  uint8 // 1 + the plugin.FaultKind of a handler's fault, for metrics; else 0
	// end is when the handler's call that gave this outcome ended
	// (deadline.Now()), or 0.
	end time.Duration
}

// said is what an outcome has to say besides its status.
type said struct {
	errText string // with a status
	header  map[string][]string
	data    []byte
}

// reply returns the outcome of an answer with header and data.
func reply(header map[string][]string, data []byte) outcome {
	return outcome{ans: &said{header: header, data: data}}
}

func failure(code int, text string) outcome {
	return outcome{status: code, ans: &said{errText: text}}
}

// text is the outcome's error text, header its headers and data its body.
func (o outcome) text() string {
	if o.ans == nil {
		return ""
	}
	return o.ans.errText
}

func (o outcome) header() map[string][]string {
	if o.ans == nil {
		return nil
	}
	return o.ans.header
}

func (o outcome) data() []byte {
	if o.ans == nil {
		return nil
	}
	return o.ans.data
}

// capture holds an answer a handler sent while a policy's response phase
// waits for it.
type capture struct{ out *outcome }

func (c *capture) respond(hdr map[string][]string, data []byte) error {
	out := reply(hdr, bytes.Clone(data))
	c.out = &out
	return nil
}

// process runs msg through chain, then deliver (the handler, or a forward
// to a subject), then the policies' response phases in reverse. chain is
// resolved when its snapshot is made: process looks nothing up.
func (h *Host) process(ctx context.Context, chain []boundPolicy, msg *plugin.Message, deliver func(context.Context, *plugin.Message) outcome) outcome {
	// A policy with a response phase needs the handler's answer in hand:
	// a capture takes it instead of the bus, made only then.
	var capt *capture
	var responders []*plugin.Plugin
	target := ""
	for _, ref := range chain {
		p := ref.p
		pm := h.metrics.Policy(ref.Name)
		if p == nil {
			h.counters.PolicyFailures.Add(1)
			pm.Decided(metrics.Missing, 0)
			h.log.Error("policy not loaded", logTrace(ctx, "policy", ref.Name, "subject", msg.Subject, "fail_open", ref.FailOpen)...)
			if ref.FailOpen {
				continue
			}
			return failure(503, "policy "+ref.Name+" is not available")
		}
		if p.HasResponsePhase() && (msg.Reply != "" || msg.Respond != nil) {
			if msg.Respond == nil { // the HTTP ingress captures already
				capt = &capture{}
				msg.Respond = capt.respond
			}
		}
		start := deadline.Now()
		pctx, span := h.policySpan(ctx, ref.Name, p, msg.Subject, "")
		res, err := p.Policy(pctx, msg)
		if err != nil && isClosed(err) {
			// This version was swapped out and closed before the call
			// began; nothing ran, so run the one serving now.
			if next := h.servingPolicy(ref.Name); next != nil && next != p {
				p = next
				res, err = p.Policy(pctx, msg)
			}
		}
		decision := policyDecision(res, err, msg.Subject)
		pm.Decided(decision, deadline.Now()-start)
		endPolicy(span, decision, err)
		reason := takeRefusal(msg)
		if err != nil {
			h.counters.PolicyFailures.Add(1)
			summary := err.Error()
			var f *plugin.Fault
			if errors.As(err, &f) {
				summary = f.Kind.String() + ": " + f.Summary()
			}
			h.log.Error("policy failed", logTrace(ctx, "policy", ref.Name, "version", p.VersionHash(), "subject", msg.Subject,
				"fail_open", ref.FailOpen, "error", summary)...)
			if ref.FailOpen {
				continue
			}
			return failure(503, "policy "+ref.Name+" failed")
		}
		if res.Replied {
			if capt != nil && capt.out != nil {
				return *capt.out
			}
			return outcome{sent: true}
		}
		if res.Status != 0 {
			h.counters.PolicyRejects.Add(1)
			h.refused(ref.Name, pm, reason)
			h.log.Debug("policy rejected", "policy", ref.Name, "subject", msg.Subject, "status", res.Status, "reason", res.Error, "refusal", reason)
			code := int(res.Status)
			if code < 100 || code > 599 {
				code = 403
			}
			return failure(code, res.Error)
		}
		if res.Subject != "" && res.Subject != msg.Subject {
			target = res.Subject
		} else if res.Subject != "" {
			// Routing a message to its own subject would run this chain again.
			h.log.Debug("policy routed a message to its own subject; delivering it here", "policy", ref.Name, "subject", msg.Subject)
		}
		if p.HasResponsePhase() {
			responders = append(responders, p)
		}
	}

	var out outcome
	if target != "" {
		out = h.forward(ctx, target, msg, msg.Reply != "" || msg.Respond != nil)
	} else {
		out = deliver(ctx, msg)
	}
	if out.sent && capt != nil && capt.out != nil {
		out = *capt.out
	}
	if len(responders) == 0 || out.none || out.sent {
		return out
	}
	resp := &plugin.Response{Status: int32(out.status), Header: out.header(), Data: out.data()}
	for i := len(responders) - 1; i >= 0; i-- {
		p := responders[i]
		pctx, span := h.policySpan(ctx, p.Name(), p, msg.Subject, "response")
		res, err := p.PolicyResponse(pctx, msg, resp)
		endPolicy(span, policyDecision(res, err, msg.Subject), err)
		reason := takeRefusal(msg)
		if err != nil {
			h.counters.PolicyFailures.Add(1)
			h.log.Error("policy response phase failed", logTrace(ctx, "policy", p.Name(), "subject", msg.Subject, "error", err)...)
			return failure(503, "policy "+p.Name()+" failed")
		}
		if res.Status != 0 {
			h.refused(p.Name(), h.metrics.Policy(p.Name()), reason)
			return failure(int(res.Status), res.Error)
		}
	}
	out.ans = &said{errText: out.text(), header: resp.Header, data: resp.Data}
	return out
}

// takeRefusal removes the refusal reason a policy added to msg's response
// headers (abi.HeaderRefusal, in any case) and returns it: it is for the
// host, never for the caller. A message no policy gave response headers
// costs a nil check.
func takeRefusal(msg *plugin.Message) string {
	if len(msg.RespHeader) == 0 {
		return ""
	}
	reason := ""
	for name, vs := range msg.RespHeader {
		if len(name) == len(abi.HeaderRefusal) && strings.EqualFold(name, abi.HeaderRefusal) {
			if reason == "" && len(vs) > 0 {
				reason = vs[0]
			}
			delete(msg.RespHeader, name)
		}
	}
	return reason
}

// refused counts a policy's rejection by the reason it named, if any, and
// for abi.RefusalUnknownKey asks for the policy's key sets again.
func (h *Host) refused(policy string, pm *metrics.Policy, reason string) {
	if reason == "" {
		return
	}
	if !abi.ValidRefusal(reason) {
		reason = metrics.InvalidReason
	}
	pm.Refused(reason)
	if reason == abi.RefusalUnknownKey {
		h.refreshKeys(policy)
	}
}

// sendOn sends msg to subject on the bus: as a request, returning the
// answer, when somebody waits for one; else as an event.
func (h *Host) sendOn(ctx context.Context, subject string, msg *plugin.Message, expectReply bool) outcome {
	nc := h.bus.Conn()
	fwd := &nats.Msg{Subject: subject, Header: h.seal.sealed(subject, msg.Header, msg.Data), Data: msg.Data}
	if !expectReply {
		if err := nc.PublishMsg(fwd); err != nil {
			h.log.Warn("forward failed", "subject", subject, "error", err)
		}
		return outcome{none: true}
	}
	if _, has := ctx.Deadline(); !has {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, plugin.DefaultTimeout)
		defer cancel()
	}
	resp, err := nc.RequestMsgWithContext(ctx, fwd)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return failure(503, "no responders on "+subject)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return failure(504, "timeout waiting for "+subject)
	case err != nil:
		return failure(502, err.Error())
	}
	return responseOutcome(resp)
}

// responseOutcome reads a NATS reply, error replies included.
func responseOutcome(m *nats.Msg) outcome {
	if code := m.Header.Get(abi.HeaderErrorCode); code != "" {
		n, err := strconv.Atoi(code)
		if err != nil || n == 0 {
			n = 500
		}
		return outcome{status: n, ans: &said{errText: m.Header.Get(abi.HeaderError), header: m.Header, data: m.Data}}
	}
	return reply(m.Header, m.Data)
}

// sendNATS answers a NATS message on reply with its outcome and the
// response headers policies and the handler set (resp), and reports
// whether it sent anything.
func (h *Host) sendNATS(reply string, resp map[string][]string, out outcome) bool {
	if reply == "" || out.none || out.sent {
		return false
	}
	if out.status != 0 {
		h.errorReply(reply, out.status, out.text(), resp)
		return true
	}
	if len(out.header()) == 0 && len(resp) == 0 {
		if err := h.bus.Conn().Publish(reply, out.data()); err != nil {
			h.log.Warn("reply failed", "subject", reply, "error", err)
		}
		return true
	}
	r := &nats.Msg{Subject: reply, Header: nats.Header{}, Data: out.data()}
	for k, vs := range out.header() {
		r.Header[k] = vs
	}
	for k, vs := range resp {
		if _, dup := out.header()[k]; !dup {
			r.Header[k] = append(r.Header[k], vs...)
		}
	}
	if err := h.bus.Conn().PublishMsg(r); err != nil {
		h.log.Warn("reply failed", "subject", reply, "error", err)
	}
	return true
}

// errorReply answers a request whose handling failed, with the status and
// description in the NATS micro-service error headers, plus extra headers
// (a policy's Retry-After, say).
func (h *Host) errorReply(reply string, code int, desc string, extra map[string][]string) {
	if reply == "" {
		return
	}
	r := nats.NewMsg(reply)
	for k, vs := range extra {
		r.Header[k] = append([]string(nil), vs...)
	}
	r.Header.Set(abi.HeaderErrorCode, strconv.Itoa(code))
	r.Header.Set(abi.HeaderError, desc)
	if err := h.bus.Conn().PublishMsg(r); err != nil {
		h.log.Warn("error reply failed", "reply", reply, "error", err)
	}
}

// deadLetterMsg publishes an event that failed every attempt, with why.
func (h *Host) deadLetterMsg(subject, plugin, from string, hdr map[string][]string, data []byte, last outcome, attempts int) {
	m := nats.NewMsg(subject)
	for k, vs := range hdr {
		m.Header[k] = append([]string(nil), vs...)
	}
	m.Data = data
	m.Header.Set(abi.HeaderDeadLetterError, last.text())
	m.Header.Set(abi.HeaderDeadLetterErrorCode, strconv.Itoa(last.status))
	m.Header.Set(abi.HeaderDeadLetterSubject, from)
	m.Header.Set(abi.HeaderDeadLetterPlugin, plugin)
	m.Header.Set(abi.HeaderDeadLetterAttempts, strconv.Itoa(attempts))
	// Counted before it is sent, so that whoever receives it sees it counted.
	h.counters.DeadLetters.Add(1)
	if err := h.bus.Conn().PublishMsg(m); err != nil {
		h.counters.DeadLetters.Add(-1)
		h.log.Error("dead letter failed", "subject", subject, "error", err)
		return
	}
	// The message's own trace context names its trace (a dead letter is
	// sent after the handler's spans have ended).
	h.log.Warn("event dead-lettered", logTrace(tracing.Extract(context.Background(), hdr),
		"plugin", plugin, "subject", from, "dead_letter", subject, "error", last.text())...)
}
