// The AssemblyScript SDK's implementation of the Trellis conformance plugin:
// the same behaviours as sdk/go/conformance, which the host's conformance
// suite runs against every SDK. It subscribes to "conf.>" and acts on the last
// token:
//
//   conf.echo     reply with the payload
//   conf.headers  reply with the value of header X-In as payload, and headers
//                 X-Out (the same value) and X-Subject (the subject)
//   conf.publish  publish the payload to published.conf with header
//                 X-From: conformance, reply "ok"
//   conf.request  request upstream.conf with the payload (500 ms timeout) and
//                 reply "upstream:" + the response; on timeout or no responders
//                 fail with 504 "upstream: timeout" / "upstream: no responders"
//   conf.log      log "level N: <payload>" at levels 1..5, reply "ok"
//   conf.error    fail with 422 "rejected: <payload>"
//   conf.config   reply with the config value named by the payload, or fail
//                 with 404 "no config key <payload>"
//   conf.trap     trap
//   conf.kv       payload "key=value": kv_set(key, value, no TTL), then reply
//                 with kv_get(key); "incr:key": kv_incr(key, 1) twice, reply
//                 with the second result in decimal; "cas:key": kv_cas(key,
//                 absent, "first"), then kv_cas(key, absent, "second"), which
//                 must fail with CONFLICT: reply "conflict", else fail with 500
//   conf.respheader  response_header("X-Resp", "yes"), reply "ok"
//
// The same module is a policy (trellis_policy), acting on the message's
// header X-Policy:
//
//   absent, "allow"  continue
//   "reject"         reject with 403 "rejected by conformance policy"
//   "answer"         reply "answered by conformance policy"
//   "header"         set header X-In: from-policy, continue
//   "route"          send the message to conf.echo, continue
//   "data"           replace the payload with "replaced", continue
//   "http"           for an HTTP request, replace the payload with
//                    "<method> <path>?<query> from <remote address>" and
//                    continue; a NATS message goes on unchanged
//   anything else    reject with 400 "unknown policy action <value>"
//
// and its response phase (trellis_policy_response) appends " [response]" to
// a successful response's payload when the request has X-Response: append.
//
// Build (in sdk/assemblyscript, after npm ci):
//   npx asc conformance/index.ts -O3 --runtime incremental --use abort= -o conformance/conformance-as.wasm

import {
  Headers, Inbound, Level, Msg, PolicyResponse, Status, TrellisError,
  configBytes, fail, kvCompareAndSet, kvGet, kvIncr, kvSet, log, plugin, policy, publishWithHeaders,
  reject, reply, replyWithHeaders, request, responseHeader, statusName, subscribe, utf8,
} from "../assembly/index";
export {
  trellis_abi_v1, trellis_init, trellis_handle, trellis_policy, trellis_policy_response,
} from "../assembly/index";

function init(): TrellisError | null {
  const s = subscribe("conf.>");
  return s == Status.OK ? null : fail(500, statusName(s));
}

// Replies with data when the message expects a reply, as the Go SDK does with
// a handler's result.
function answer(msg: Msg, data: Uint8Array): TrellisError | null {
  if (!msg.hasReply()) return null;
  const s = reply(data);
  if (s == Status.OK || s == Status.ALREADY_REPLIED) return null;
  return fail(500, "reply: trellis: " + statusName(s));
}

function handle(msg: Msg): TrellisError | null {
  const subject = msg.subject();
  const data = msg.data();
  const text = msg.dataString();
  const what = subject.substring(subject.lastIndexOf(".") + 1);

  if (what == "echo") return answer(msg, data);
  if (what == "headers") {
    const v = msg.headers().get("X-In");
    const input = v === null ? "" : v;
    const h = new Headers();
    h.set("X-Out", input).set("X-Subject", subject);
    if (!msg.hasReply()) return null;
    const s = replyWithHeaders(h, utf8(input));
    return s == Status.OK ? null : fail(500, "reply: trellis: " + statusName(s));
  }
  if (what == "publish") {
    const h = new Headers();
    h.set("X-From", "conformance");
    const s = publishWithHeaders("published.conf", h, data);
    if (s != Status.OK) return fail(500, "publish: trellis: " + statusName(s));
    return answer(msg, utf8("ok"));
  }
  if (what == "request") {
    const resp = request("upstream.conf", data, 500);
    if (resp.status == Status.TIMEOUT) return fail(504, "upstream: timeout");
    if (resp.status == Status.NO_RESPONDERS) return fail(504, "upstream: no responders");
    if (!resp.ok) return fail(500, "upstream: trellis: " + statusName(resp.status));
    const prefix = utf8("upstream:");
    const out = new Uint8Array(prefix.length + resp.data.length);
    out.set(prefix, 0);
    out.set(resp.data, prefix.length);
    return answer(msg, out);
  }
  if (what == "log") {
    for (let level = Level.TRACE; level <= Level.ERROR; level++) {
      log.write(level, "level " + level.toString() + ": " + text);
    }
    return answer(msg, utf8("ok"));
  }
  if (what == "error") return fail(422, "rejected: " + text);
  if (what == "config") {
    const v = configBytes(text);
    if (v === null) return fail(404, "no config key " + text);
    return answer(msg, v);
  }
  if (what == "trap") unreachable();
  if (what == "kv") return kv(msg, text);
  if (what == "respheader") {
    const s = responseHeader("X-Resp", "yes");
    if (s != Status.OK) return failed("response_header", s);
    return answer(msg, utf8("ok"));
  }
  return fail(404, "unknown behaviour " + subject);
}

// Fails with 500 "<call>: trellis: <status name>".
function failed(call: string, s: Status): TrellisError {
  return fail(500, call + ": trellis: " + statusName(s));
}

function kv(msg: Msg, payload: string): TrellisError | null {
  if (payload.startsWith("incr:")) {
    const key = payload.substring(5);
    let c = kvIncr(key, 1);
    if (c.ok) c = kvIncr(key, 1);
    if (!c.ok) return failed("kv incr", c.status);
    return answer(msg, utf8(c.value.toString()));
  }
  if (payload.startsWith("cas:")) {
    const key = payload.substring(4);
    const none = new Uint8Array(0);
    let s = kvCompareAndSet(key, none, utf8("first"));
    if (s != Status.OK) return failed("kv cas", s);
    s = kvCompareAndSet(key, none, utf8("second"));
    if (s == Status.CONFLICT) return answer(msg, utf8("conflict"));
    if (s != Status.OK) return failed("kv cas", s);
    return fail(500, "kv cas: the second compare-and-set did not conflict");
  }
  const eq = payload.indexOf("=");
  if (eq < 0) return fail(400, "kv: the payload is not key=value, incr:key or cas:key");
  const key = payload.substring(0, eq);
  const s = kvSet(key, utf8(payload.substring(eq + 1)));
  if (s != Status.OK) return failed("kv set", s);
  const v = kvGet(key);
  if (!v.ok) return failed("kv get", v.status);
  return answer(msg, v.value);
}

function decide(call: string, s: Status): TrellisError | null {
  return s == Status.OK ? null : failed(call, s);
}

function onMessage(req: Inbound): TrellisError | null {
  const h = req.header("X-Policy");
  const action = h === null ? "" : h;
  if (action == "" || action == "allow") return null;
  if (action == "reject") return reject(403, "rejected by conformance policy");
  if (action == "answer") return req.answer(utf8("answered by conformance policy"));
  if (action == "header") return decide("set_header", req.setHeader("X-In", "from-policy"));
  if (action == "route") return decide("set_subject", req.route("conf.echo"));
  if (action == "data") return decide("set_data", req.setData(utf8("replaced")));
  if (action == "http") {
    if (!req.isHttp()) return null;
    const text = req.method() + " " + req.path() + "?" + req.query() + " from " + req.remoteAddr();
    return decide("set_data", req.setData(utf8(text)));
  }
  return reject(400, "unknown policy action " + action);
}

function onResponse(resp: PolicyResponse): TrellisError | null {
  if (!resp.ok) return null;
  const want = resp.requestHeader("X-Response");
  if (want === null || want != "append") return null;
  const suffix = utf8(" [response]");
  const data = resp.data();
  const out = new Uint8Array(data.length + suffix.length);
  out.set(data, 0);
  out.set(suffix, data.length);
  return decide("set_data", resp.setData(out));
}

plugin(handle, init);
policy(onMessage, onResponse);
