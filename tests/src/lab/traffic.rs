//! Traffic checks: verified TCP transfers and iperf3.

use super::*;

/// Which way the bytes go in [`tcp_transfer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The connecting side sends.
    ClientToServer,
    /// The listening side sends.
    ServerToClient,
}

/// The result of a verified [`tcp_transfer`].
#[derive(Debug, Clone, Copy)]
pub struct TransferReport {
    /// Bytes received and verified.
    pub bytes: u64,
    /// From accepting the connection to the receiver seeing end of stream.
    pub elapsed: Duration,
}

/// Byte `i` of the transfer pattern: a keyed hash of the 8-byte word index, so a dropped,
/// duplicated or reordered segment shows up at once, at its offset.
pub(super) fn pattern_fill(offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let pos = offset + i as u64;
        let mut z = (pos / 8).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        *b = z.to_le_bytes()[(pos % 8) as usize];
    }
}

fn send_pattern(s: &mut TcpStream, bytes: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(buf.len() as u64) as usize;
        pattern_fill(sent, &mut buf[..n]);
        s.write_all(&buf[..n])?;
        sent += n as u64;
    }
    s.shutdown(Shutdown::Write)?;
    // Wait for the receiver to close after checking everything.
    let mut sink = [0u8; 64];
    while s.read(&mut sink)? > 0 {}
    Ok(())
}

fn receive_pattern(s: &mut TcpStream, expected: u64) -> Result<u64, LabError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut want = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    loop {
        let n = s
            .read(&mut buf)
            .map_err(io_err(format!("receiving after {got} bytes")))?;
        if n == 0 {
            break;
        }
        if got + n as u64 > expected {
            return Err(LabError::Corrupt(format!(
                "more than the {expected} bytes sent arrived"
            )));
        }
        pattern_fill(got, &mut want[..n]);
        if let Some(i) = buf[..n].iter().zip(&want[..n]).position(|(a, b)| a != b) {
            return Err(LabError::Corrupt(format!(
                "first wrong byte at offset {}",
                got + i as u64
            )));
        }
        got += n as u64;
    }
    if got != expected {
        return Err(LabError::Corrupt(format!(
            "{got} of {expected} bytes arrived"
        )));
    }
    s.shutdown(Shutdown::Both)
        .map_err(io_err("closing after the transfer"))?;
    Ok(got)
}

/// Sends `bytes` of a position-dependent pattern over one TCP connection from `client` to
/// a listener in `server` on `server_addr` (or the other way, per `flow`), and checks that
/// every byte arrived intact and in order. Everything is bounded by `timeout`.
pub fn tcp_transfer(
    client: &Netns,
    server: &Netns,
    server_addr: SocketAddr,
    bytes: u64,
    flow: Flow,
    timeout: Duration,
) -> Result<TransferReport, LabError> {
    let deadline = Instant::now() + timeout;
    let listener = server.tcp_listen(server_addr)?;
    listener
        .set_nonblocking(true)
        .map_err(io_err("making the listener non-blocking"))?;
    let set_timeouts = |s: &TcpStream| -> Result<(), LabError> {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        s.set_nonblocking(false).map_err(io_err("socket mode"))?;
        s.set_read_timeout(Some(left))
            .map_err(io_err("socket timeout"))?;
        s.set_write_timeout(Some(left))
            .map_err(io_err("socket timeout"))
    };

    thread::scope(|scope| {
        let server_side = scope.spawn(|| -> Result<TransferReport, LabError> {
            let (mut s, _) = try_wait_for(
                timeout,
                &format!("a connection on {server_addr}"),
                || match listener.accept() {
                    Ok(c) => Some(Ok(c)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                    Err(e) => Some(Err(e)),
                },
            )?
            .map_err(io_err(format!("accepting on {server_addr}")))?;
            set_timeouts(&s)?;
            let start = Instant::now();
            let got = match flow {
                Flow::ClientToServer => receive_pattern(&mut s, bytes)?,
                Flow::ServerToClient => {
                    send_pattern(&mut s, bytes).map_err(io_err("sending from the server"))?;
                    bytes
                }
            };
            Ok(TransferReport {
                bytes: got,
                elapsed: start.elapsed(),
            })
        });
        let client_side = || -> Result<u64, LabError> {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut s = client.tcp_connect(server_addr, left.max(Duration::from_millis(1)))?;
            set_timeouts(&s)?;
            match flow {
                Flow::ClientToServer => {
                    send_pattern(&mut s, bytes).map_err(io_err("sending from the client"))?;
                    Ok(bytes)
                }
                Flow::ServerToClient => receive_pattern(&mut s, bytes),
            }
        };
        let client_result = client_side();
        let server_result = match server_side.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        };
        // Report the client's error first: a failed connect also times the server out.
        client_result?;
        server_result
    })
}

/// Summary of an iperf3 run.
#[derive(Debug, Clone)]
pub struct IperfReport {
    /// Received throughput, bits per second.
    pub bits_per_second: f64,
    /// Bytes received.
    pub bytes: u64,
    /// TCP retransmissions (TCP runs only).
    pub retransmits: Option<u64>,
    /// The full `iperf3 -J` output of the client.
    pub json: serde_json::Value,
}

/// Runs one iperf3 test: a one-off server (`-s -1`) bound to `server_addr` in `server`, the
/// client in `client` for `seconds` with `extra_args` (e.g. `["-R"]`, `["-u", "-b", "100M"]`).
pub fn iperf3(
    client: &Netns,
    server: &Netns,
    server_addr: IpAddr,
    seconds: u32,
    extra_args: &[&str],
) -> Result<IperfReport, LabError> {
    let addr = server_addr.to_string();
    let srv = server.spawn(
        "iperf3-server",
        &[
            "iperf3",
            "-s",
            "-1",
            "-B",
            &addr,
            "-p",
            "5201",
            "--forceflush",
        ],
    )?;
    srv.wait_stdout_line("Server listening", SETUP_TIMEOUT)?;
    let secs = seconds.max(1).to_string();
    let mut argv = vec!["iperf3", "-c", &addr, "-p", "5201", "-t", &secs, "-J"];
    argv.extend_from_slice(extra_args);
    let out = client.run_timeout(&argv, Duration::from_secs(u64::from(seconds) + 30))?;
    let json: serde_json::Value = serde_json::from_str(&out.stdout).map_err(|e| {
        LabError::Setup(format!(
            "iperf3 printed no JSON ({e}): {}",
            tail_for_error(&out.stderr, &out.stdout)
        ))
    })?;
    if let Some(err) = json.get("error").and_then(|e| e.as_str()) {
        return Err(LabError::Setup(format!("iperf3: {err}")));
    }
    let end = json.get("end");
    let sum = end
        .and_then(|e| e.get("sum_received"))
        .or_else(|| end.and_then(|e| e.get("sum")))
        .ok_or_else(|| LabError::Setup("iperf3 JSON has no end.sum_received / end.sum".into()))?;
    let bits_per_second = sum
        .get("bits_per_second")
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    let bytes = sum.get("bytes").and_then(|v| v.as_u64()).unwrap_or(0);
    let retransmits = end
        .and_then(|e| e.get("sum_sent"))
        .and_then(|s| s.get("retransmits"))
        .and_then(|v| v.as_u64());
    drop(srv);
    Ok(IperfReport {
        bits_per_second,
        bytes,
        retransmits,
        json,
    })
}
