//! The client side of the control socket, used by the command line and tests.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context};

use super::protocol::{socket_path, ControlRequest, ControlResponse};

/// Sends one request to the server whose state directory is `state_dir` and waits for the
/// answer (blocking; for the command line and tests).
pub fn request(state_dir: &Path, request: &ControlRequest) -> anyhow::Result<ControlResponse> {
    let path = socket_path(state_dir);
    let mut stream = UnixStream::connect(&path).with_context(|| {
        format!(
            "no server answers on {} (is `dhcp-user serve` running with this --state-dir?)",
            path.display()
        )
    })?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    reader.read_line(&mut answer)?;
    if answer.is_empty() {
        bail!("the server closed the control connection without answering");
    }
    let response: ControlResponse =
        serde_json::from_str(&answer).context("the server's answer is not a control response")?;
    match response {
        ControlResponse::Error(message) => bail!("the server refused: {message}"),
        ControlResponse::Failed(failure) => bail!(
            "the server refused ({}): {}",
            serde_json::to_value(failure.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            failure.message
        ),
        _ => {}
    }
    Ok(response)
}
