//! The examples as real processes: `cargo test` builds them; these tests run them.
#![cfg(all(feature = "client", feature = "worker"))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// target/<profile>/examples/<name>, next to this test binary's deps/ folder.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join("examples")
        .join(name);
    assert!(
        dir.exists(),
        "{} is not built (cargo test builds examples)",
        dir.display()
    );
    dir
}

/// The base URL in an example's `listening: http://...` line.
fn listening_at(line: &str) -> String {
    let url = line.split("listening: ").nth(1).unwrap_or_default().trim();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    url.to_owned()
}

/// A child process whose stdout lines arrive on a channel; killed on drop.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn start(name: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(example(name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle`; returns it.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!(
                        "the process closed its output before a line containing {needle:?} \
                         (its stderr is above); saw {:#?}",
                        self.seen
                    )
                }
            }
        }
        panic!(
            "no line containing {needle:?} within {timeout:?}; saw {:#?}",
            self.seen
        );
    }

    fn count(&mut self, needle: &str) -> usize {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.iter().filter(|l| l.contains(needle)).count()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 request over a fresh connection; returns (status, body).
fn http(method: &str, url: &str, body: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut s = TcpStream::connect(host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn quickstart_exits_zero_and_prints_the_delivered_events() {
    let started = Instant::now();
    let out = Command::new(example("quickstart"))
        .output()
        .expect("run quickstart");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "quickstart failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    for needle in [
        "201 {\"success\":true}",
        "verified call.finished",
        "verified call.completed",
        "/outbound: call.finished",
        "/response: call.completed",
        "delivery log",
        "2 delivered",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
}

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

#[test]
fn server_and_receiver_end_to_end() {
    // Port 0 everywhere: each example binds a free port itself and prints its address (a
    // port picked here and released could be taken by anything before the example binds).
    let mut receiver = Proc::start("receiver", &["--secret", SECRET, "--listen", "127.0.0.1:0"]);
    let recv = listening_at(&receiver.wait_for("listening: ", Duration::from_secs(10)));
    let hook = format!("{recv}/hook");
    let get = format!("{recv}/get");
    let resp = format!("{recv}/resp");
    let mut server = Proc::start(
        "server",
        &[
            "--listen",
            "127.0.0.1:0",
            "--store",
            "memory",
            "--allow-insecure",
            "--outbound",
            &hook,
            "--outbound-get",
            &get,
            "--response",
            &resp,
            "--header",
            "X-Api-Key: k123",
            "--signing-secret",
            SECRET,
            "--call-duration-ms",
            "50",
            "--retry-schedule",
            "0,1s",
        ],
    );
    let inbound = server.wait_for("inbound: ", Duration::from_secs(10));
    let url = inbound.trim_start_matches("inbound: ").to_owned();
    assert!(
        server
            .wait_for("signing-secret: ", Duration::from_secs(1))
            .ends_with(SECRET)
    );
    let outbound = server.wait_for("outbound: ", Duration::from_secs(1));
    let outbound_id = outbound.split(' ').nth(1).unwrap().to_owned();
    let base = listening_at(&server.wait_for("listening: ", Duration::from_secs(10)));

    let (status, body) = http(
        "POST",
        &url,
        r#"{"type":"calls.execute","data":{"phoneNumber":"+15551234567","firstName":"Jane"}}"#,
    );
    assert_eq!((status, body.as_str()), (201, r#"{"success":true}"#));
    receiver.wait_for("call.completed", Duration::from_secs(10));
    receiver.wait_for("call.finished", Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.count("call.finished") < 2 {
        assert!(
            Instant::now() < deadline,
            "both outbound webhooks (POST and GET) get call.finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let (s, requests) = http("GET", &format!("{base}/_logs/requests"), "");
    assert_eq!(s, 200);
    let requests: serde_json::Value = serde_json::from_str(&requests).unwrap();
    assert_eq!(requests[0]["status"], 201);
    assert_eq!(requests[0]["outcome"], "placed");
    // The engine logs an attempt once the response is back: poll until all three are in.
    let deadline = Instant::now() + Duration::from_secs(10);
    let deliveries = loop {
        let (s, body) = http("GET", &format!("{base}/_logs/deliveries"), "");
        assert_eq!(s, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v.as_array().unwrap().len() >= 3 || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(deliveries.as_array().unwrap().len(), 3);
    assert!(
        deliveries
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["success"] == true && d["messageId"].as_str().unwrap().starts_with("msg_"))
    );
    let (s, webhooks) = http("GET", &format!("{base}/_webhooks"), "");
    assert_eq!(s, 200);
    assert!(!webhooks.contains("k123"), "header values are masked");
    assert!(
        !webhooks.contains(SECRET.trim_start_matches("whsec_")),
        "no secret in the list"
    );
    let (s, report) = http("POST", &format!("{base}/_webhooks/{outbound_id}/test"), "");
    assert_eq!(s, 200, "{report}");
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(
        (report["success"].as_bool(), report["status"].as_u64()),
        (Some(true), Some(200))
    );
    receiver.wait_for("call_test_abc123def456", Duration::from_secs(5));
    let delivery_id = deliveries[0]["deliveryId"].as_str().unwrap().to_owned();
    let (s, redelivered) = http(
        "POST",
        &format!("{base}/_deliveries/{delivery_id}/redeliver"),
        "",
    );
    assert_eq!(s, 200, "{redelivered}");
    receiver.wait_for("duplicate, ignored", Duration::from_secs(10));

    // A bad signature gets 401 from the receiver.
    let (s, _) = http("POST", &hook, r#"{"type":"call.finished"}"#);
    assert_eq!(s, 401);
    // The inbound path's errors through the real server.
    assert_eq!(http("POST", &url, "{").0, 400);
    assert_eq!(http("GET", &url, "").0, 405);
    assert_eq!(http("POST", &format!("{base}/nope"), "{}").0, 404);

    let status = server.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    server.wait_for("stopped:", Duration::from_secs(5));
}
