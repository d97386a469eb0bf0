// Package conformance holds the suite that every plugin SDK must pass: it
// builds each SDK's conformance plugin from source with package build, loads
// it into a real host on an embedded NATS server (package trellistest), and
// runs the same behaviours against each, as subtests named
// language/behaviour:
//
//	go test -race ./host/internal/conformance/
//	go test -run 'TestConformance/rust/' ./host/internal/conformance/
//
// A conformance plugin subscribes to "conf.>" and acts on the last token of
// the subject (sdk/go/conformance/main.go is the reference):
//
//	behaviour        request                     expected
//	echo             conf.echo "hi"              reply "hi", no error headers
//	empty            conf.echo ""                empty reply, no error headers
//	large            conf.echo 1 MiB             the same 1 MiB
//	sizes            conf.echo 3 MiB, 5 B, ...   each payload back exactly, sizes growing and
//	                                             shrinking (SDKs may reuse their buffers)
//	headers          conf.headers, X-In: v       reply "v", headers X-Out: v and X-Subject: conf.headers
//	publish          conf.publish "p"            reply "ok"; "p" on published.conf with X-From: conformance
//	                                             (the plugin is granted publish on published.conf)
//	request          conf.request "ping"         with a responder on upstream.conf (request granted):
//	                                             reply "upstream:" + its answer;
//	                                             with none: 504 "upstream: no responders";
//	                                             with one slower than 500 ms: 504 "upstream: timeout"
//	log              conf.log "x"                reply "ok"; the host log has "level N: x" at trace,
//	                                             debug, info, warn and error, under the plugin's name
//	error            conf.error "x"              422, Nats-Service-Error "rejected: x"
//	config           conf.config "colour"        the config value; an unknown key: 404 "no config key <key>"
//	trap             conf.trap                   500 error reply; the plugin serves the next message
//	kv/set-get       conf.kv "k=v"               kv_set(k, v), kv_get(k): reply "v"
//	kv/incr          conf.kv "incr:k"            kv_incr(k, 1) twice: reply "2" (then "4": the count is in the host)
//	kv/cas           conf.kv "cas:k"             kv_cas(k, absent, "first") works, kv_cas(k, absent, "second")
//	                                             gets CONFLICT: reply "conflict" (again: 500 "kv cas: trellis: conflict")
//	respheader       conf.respheader             reply "ok" with header X-Resp: yes (set by response_header)
//	reply-subject    conf.replyto, reply to R    (Go only) reply R: the handler reads its reply subject
//
// Error replies carry Nats-Service-Error-Code and Nats-Service-Error (abi/ABI.md section 4).
//
// abi/echo.wat, the ABI with no SDK, runs the echo subset (echo, empty,
// large, sizes) as the reference for what the host itself guarantees.
//
// The same module is also a policy (trellis_policy and
// trellis_policy_response). TestConformancePolicies loads it twice on one
// host per language: as the policy "<lang>-policy" (granted requests and
// publishing on conf.echo), and as the handler conf-<lang> behind it, which
// an HTTP route POST /conf/{what} also reaches through the policy. The
// policy acts on the request header X-Policy:
//
//	behaviour   request                                  expected
//	allow       no X-Policy, or "allow"                  the handler's answer
//	reject      "reject"                                 403 "rejected by conformance policy"
//	answer      "answer" on conf.error                   reply "answered by conformance policy"
//	header      "header" on conf.headers, X-In: a        the handler sees X-In: from-policy
//	route       "route" on conf.error "p"                the message went to conf.echo: reply "p"
//	data        "data" on conf.echo                      reply "replaced"
//	http        "http", POST /conf/echo?x=1 over HTTP    "POST /conf/echo?x=1 from 127.0.0.1:<port>";
//	                                                     over NATS the message goes on unchanged
//	unknown     "bogus"                                  400 "unknown policy action bogus"
//	response    X-Response: append                       a success gets " [response]" appended (the
//	                                                     response phase reads the request's header);
//	                                                     an error reply is left alone
//	respheader  conf.respheader, X-Response: append      "ok [response]" with X-Resp: yes
//	kv          conf.kv "incr:k"                         "2", behind the policy
//
// TestExamples runs every language's echo and greet examples: echo returns
// the payload, greet answers "Ada" with "Hello, Ada!".
//
// TestSDKConstantsMatchABI reads each SDK's source (sdk/c/trellis.h, the
// Rust crate's lib.rs and sys.rs, the AssemblyScript SDK's index.ts and
// sys.ts, the Go SDK's //go:wasmimport and //go:wasmexport lines) and holds
// every status code and text, field, log level, host function, export and
// the version it spells to package abi's, so that a number no behaviour
// exercises cannot drift either.
//
// To add a language: write its SDK and conformance plugin, teach package
// build to build it, and add one row to the languages table in
// conformance_test.go (its examples too, if it has them), and one to
// sdkSources in constants_test.go. A toolchain that
// is not installed skips that language's subtests with the install command,
// unless TRELLIS_REQUIRE_TOOLCHAINS=1 (as CI sets).
//
// bench_test.go compares the languages: module size, compile and load
// time, and the cost of dispatching one message:
//
//	go test -run '^$' -bench . -benchtime 2000x ./host/internal/conformance/
package conformance
