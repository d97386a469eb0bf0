// greet: answers every request on subject "greet" with "Hello, <payload>!".
// The operator may change the greeting word with the config key "greeting".
// It joins queue group "greet", as the greet examples in the other languages
// do, so each request is answered by one of them.
//
// Build (in this directory): npm ci && npm run build   → greet-as.wasm

import { Msg, Status, TrellisError, configBytes, failStatus, plugin, reply, subscribe, utf8 } from "@trellis-mesh/sdk";
export { trellis_abi_v1, trellis_init, trellis_handle } from "@trellis-mesh/sdk";

function init(): TrellisError | null {
  const s = subscribe("greet", "greet");
  return s == Status.OK ? null : failStatus(s);
}

function handle(msg: Msg): TrellisError | null {
  if (!msg.hasReply()) return null; // a plain publish: nobody to answer
  let greeting = utf8("Hello");
  const configured = configBytes("greeting");
  if (configured !== null) greeting = configured;
  // The payload is used as bytes, so a name that is not UTF-8 comes back
  // exactly as it was sent.
  const name = msg.data();
  const out = new Uint8Array(greeting.length + 2 + name.length + 1);
  out.set(greeting, 0);
  out[greeting.length] = 0x2c; // ','
  out[greeting.length + 1] = 0x20; // ' '
  out.set(name, greeting.length + 2);
  out[out.length - 1] = 0x21; // '!'
  const s = reply(out);
  return s == Status.OK ? null : failStatus(s);
}

plugin(handle, init);
