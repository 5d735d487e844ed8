//! Property-based test of the REST API: schemathesis (PyPI) generates requests from
//! /openapi.json of the real task-api binary and checks that no response is a 5xx and every
//! response conforms to the document. The script says which checks run and why.

use std::path::Path;
use std::process::Command;

#[test]
fn schemathesis_finds_no_server_error_and_no_response_outside_the_document() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/schemathesis.sh");
    // A free port of its own so it can run beside the other tests.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let status = Command::new(&script)
        .arg(env!("CARGO_BIN_EXE_task-api"))
        .env("ST_PORT", port.to_string())
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        status.success(),
        "schemathesis reported failures (its output is above): {status}"
    );
}
