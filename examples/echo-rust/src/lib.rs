//! echo: answers every request on subject `echo` with its payload, unchanged.
//! It joins queue group `echo`, as the echo examples in the other languages
//! do, so each request is answered by one of them.
//!
//! Build (in this directory):
//!     RUSTC=/usr/bin/rustc /usr/bin/cargo build --release --target wasm32-wasi --offline
//!     cp target/wasm32-wasi/release/echo_rust.wasm echo-rust.wasm

use trellis::{Error, Msg};

fn init() -> Result<(), Error> {
    trellis::subscribe_queue("echo", "echo")?;
    Ok(())
}

fn handle(msg: &Msg) -> Result<(), Error> {
    if !msg.has_reply() {
        return Ok(()); // a plain publish: nobody to answer
    }
    trellis::reply(msg.data())?;
    Ok(())
}

trellis::plugin! { init: init, handle: handle }
