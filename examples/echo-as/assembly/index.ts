// echo: answers every request on subject "echo" with its payload, unchanged.
// It joins queue group "echo", as the echo examples in the other languages
// do, so each request is answered by one of them.
//
// Build (in this directory): npm ci && npm run build   → echo-as.wasm

import { Msg, Status, TrellisError, failStatus, plugin, reply, subscribe } from "@trellis-mesh/sdk";
export { trellis_abi_v1, trellis_init, trellis_handle } from "@trellis-mesh/sdk";

function init(): TrellisError | null {
  const s = subscribe("echo", "echo");
  return s == Status.OK ? null : failStatus(s);
}

function handle(msg: Msg): TrellisError | null {
  if (!msg.hasReply()) return null; // a plain publish: nobody to answer
  const s = reply(msg.data());
  return s == Status.OK ? null : failStatus(s);
}

plugin(handle, init);
