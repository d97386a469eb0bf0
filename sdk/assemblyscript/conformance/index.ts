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
//
// Build (in sdk/assemblyscript, after npm ci):
//   npx asc conformance/index.ts -O3 --runtime incremental --use abort= -o conformance/conformance-as.wasm

import {
  Headers, Level, Msg, Status, TrellisError,
  configBytes, fail, log, plugin, publishWithHeaders, reply, replyWithHeaders, request, statusName, subscribe, utf8,
} from "../assembly/index";
export { trellis_abi_v1, trellis_init, trellis_handle } from "../assembly/index";

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
  return fail(404, "unknown behaviour " + subject);
}

plugin(handle, init);
