//! The production client against real servers on 127.0.0.1 (and nothing else).
#![cfg(feature = "client")]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atllas_webhooks::delivery::{
    ClientConfig, HttpClient, HttpResponse, HyperClient, TransportError, TransportErrorKind,
};
use atllas_webhooks::destination::DestinationPolicy;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `http` allowed, private destinations not: isolates the address guard from the scheme rule.
const HTTP_PUBLIC_ONLY: DestinationPolicy = DestinationPolicy {
    allow_http: true,
    allow_private: false,
};

/// One request as the test server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    head: String,
    body: Vec<u8>,
}

/// A tiny keep-alive HTTP/1.1 server: `respond` maps a request to raw response bytes.
struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
    fn paths(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.path.clone())
            .collect()
    }
}

async fn serve<F>(respond: F) -> Server
where
    F: Fn(&Seen) -> Vec<u8> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let respond = Arc::new(respond);
    let (c, s) = (connections.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let (respond, seen) = (respond.clone(), s.clone());
            tokio::spawn(async move {
                let _ = handle(stream, &*respond, &seen).await;
            });
        }
    });
    Server {
        addr,
        connections,
        seen,
    }
}

/// Serves requests on one connection until the peer closes it.
async fn handle<F>(
    mut stream: TcpStream,
    respond: &F,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()>
where
    F: Fn(&Seen) -> Vec<u8>,
{
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buf).await? else {
            return Ok(());
        };
        seen.lock().unwrap().push(request.clone());
        stream.write_all(&respond(&request)).await?;
    }
}

/// Reads one request (head and `content-length` body); `None` on a clean EOF.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Seen>> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + len].to_vec();
    buf.drain(..head_end + len);
    Ok(Some(Seen { path, head, body }))
}

fn response(status: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn client_with(policy: DestinationPolicy, f: impl FnOnce(&mut ClientConfig)) -> HyperClient {
    let mut config = ClientConfig {
        destinations: policy,
        ..ClientConfig::default()
    };
    f(&mut config);
    HyperClient::new(config).unwrap()
}

fn client(policy: DestinationPolicy) -> HyperClient {
    client_with(policy, |_| {})
}

fn post(url: &str, body: &'static [u8]) -> http::Request<Bytes> {
    http::Request::post(url)
        .header("content-type", "application/json")
        .body(Bytes::from_static(body))
        .unwrap()
}

fn get(url: &str) -> http::Request<Bytes> {
    http::Request::get(url).body(Bytes::new()).unwrap()
}

async fn send(
    client: &HyperClient,
    req: http::Request<Bytes>,
) -> Result<HttpResponse, TransportError> {
    client.send(req).await
}

#[tokio::test]
async fn ok_with_body_and_user_agent() {
    let server = serve(|_| response("200 OK", "x-test: yes\r\n", "hello")).await;
    let c = client(DestinationPolicy::insecure());
    let res = send(&c, post(&server.url("/hook?x=1"), b"{\"a\":1}"))
        .await
        .unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(&res.body[..], b"hello");
    assert!(!res.body_truncated);
    assert_eq!(res.headers.get("x-test").unwrap(), "yes");

    let seen = server.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.path, "/hook?x=1");
    assert_eq!(seen.body, b"{\"a\":1}");
    let head = seen.head.to_ascii_lowercase();
    let ua = format!(
        "user-agent: atllas-webhooks/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    assert!(head.contains(&ua), "{head}");
    assert!(
        head.contains(&format!("host: {}\r\n", server.addr)),
        "{head}"
    );

    // A user-agent of the request's own is kept.
    let req = http::Request::get(server.url("/ua"))
        .header("user-agent", "custom/1")
        .body(Bytes::new())
        .unwrap();
    send(&c, req).await.unwrap();
    let head = server.seen.lock().unwrap()[1].head.to_ascii_lowercase();
    assert!(head.contains("user-agent: custom/1\r\n"), "{head}");
    assert!(!head.contains("atllas-webhooks/"), "{head}");
}

#[tokio::test]
async fn status_500_is_a_response() {
    let server = serve(|_| response("500 Internal Server Error", "", "boom")).await;
    let res = send(
        &client(DestinationPolicy::insecure()),
        get(&server.url("/")),
    )
    .await
    .unwrap();
    assert_eq!(res.status, 500);
    assert_eq!(&res.body[..], b"boom");
}

#[tokio::test]
async fn redirect_is_not_followed() {
    let server = serve(|s| {
        if s.path == "/target" {
            response("200 OK", "", "followed")
        } else {
            response("302 Found", "location: /target\r\n", "")
        }
    })
    .await;
    let res = send(
        &client(DestinationPolicy::insecure()),
        post(&server.url("/hook"), b"{}"),
    )
    .await
    .unwrap();
    assert_eq!(res.status, 302);
    assert_eq!(res.headers.get("location").unwrap(), "/target");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.paths(), vec!["/hook".to_owned()]);
}

#[tokio::test]
async fn loopback_literal_is_blocked_unless_insecure() {
    let server = serve(|_| response("200 OK", "", "ok")).await;

    // The address guard alone (http allowed, private not).
    let err = send(&client(HTTP_PUBLIC_ONLY), get(&server.url("/")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Blocked, "{err}");
    assert!(err.message.contains("127.0.0.1"), "{err}");
    assert!(err.message.contains("loopback"), "{err}");

    // Strict: https to a loopback literal is refused before any connection.
    let url = format!("https://{}/", server.addr);
    let err = send(&client(DestinationPolicy::strict()), get(&url))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Blocked, "{err}");
    assert!(err.message.contains("127.0.0.1"), "{err}");

    // Strict refuses plain http as such.
    let err = send(&client(DestinationPolicy::strict()), get(&server.url("/")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Blocked, "{err}");

    assert_eq!(
        server.connections(),
        0,
        "a blocked address was connected to"
    );

    let res = send(
        &client(DestinationPolicy::insecure()),
        get(&server.url("/")),
    )
    .await
    .unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn loopback_ipv6_literal_is_blocked() {
    let err = send(&client(HTTP_PUBLIC_ONLY), get("http://[::1]:9/"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Blocked, "{err}");
    let err = send(
        &client(HTTP_PUBLIC_ONLY),
        get("http://[::ffff:127.0.0.1]:9/"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Blocked, "{err}");
}

#[tokio::test]
async fn localhost_resolves_then_is_blocked() {
    let server = serve(|_| response("200 OK", "", "ok")).await;
    let port = server.addr.port();

    let err = send(
        &client(HTTP_PUBLIC_ONLY),
        get(&format!("http://localhost:{port}/")),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Blocked, "{err}");
    assert!(err.message.contains("localhost"), "{err}");
    assert!(err.message.contains("loopback"), "{err}");

    let err = send(
        &client(DestinationPolicy::strict()),
        get(&format!("https://localhost:{port}/")),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Blocked, "{err}");
    assert_eq!(
        server.connections(),
        0,
        "a blocked address was connected to"
    );

    // A decimal-integer host is resolved (inet_aton) to 127.0.0.1 and blocked too.
    let err = send(
        &client(HTTP_PUBLIC_ONLY),
        get(&format!("http://2130706433:{port}/")),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err.kind,
            TransportErrorKind::Blocked | TransportErrorKind::Dns
        ),
        "{err}"
    );
    assert_eq!(server.connections(), 0);

    let res = send(
        &client(DestinationPolicy::insecure()),
        get(&format!("http://localhost:{port}/")),
    )
    .await
    .unwrap();
    assert_eq!(res.status, 200);
}

#[tokio::test]
async fn silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s); // accept and never answer
        }
    });
    let c = client_with(DestinationPolicy::insecure(), |c| {
        c.total_timeout = Duration::from_millis(300);
    });
    let start = Instant::now();
    let err = send(&c, post(&format!("http://{addr}/"), b"{}"))
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.kind, TransportErrorKind::Timeout, "{err}");
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    hold.abort();
}

#[tokio::test]
async fn refused_is_connect() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let err = send(
        &client(DestinationPolicy::insecure()),
        get(&format!("http://{addr}/")),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Connect, "{err}");
    assert!(err.message.to_lowercase().contains("refused"), "{err}");
}

/// Closing after reading the request (a FIN, no response head): hyper reports an
/// incomplete message, mapped to `Other`.
#[tokio::test]
async fn close_after_request_is_other() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let _ = read_request(&mut s, &mut buf).await;
            drop(s);
        }
    });
    let err = send(
        &client(DestinationPolicy::insecure()),
        post(&format!("http://{addr}/"), b"{}"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Other, "{err}");
}

/// Closing right after accepting, without reading: a FIN gives `Other` (incomplete
/// message), but if the request was already in the server's receive buffer the kernel
/// answers with a reset, which is `Connect`. Either is accepted.
#[tokio::test]
async fn close_right_after_accept_is_other_or_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    let err = send(
        &client(DestinationPolicy::insecure()),
        post(&format!("http://{addr}/"), b"{}"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err.kind,
            TransportErrorKind::Other | TransportErrorKind::Connect
        ),
        "{err}"
    );
}

async fn endless_server(chunked: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let w = written.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let w = w.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if read_request(&mut s, &mut buf)
                    .await
                    .ok()
                    .flatten()
                    .is_none()
                {
                    return;
                }
                let head: &[u8] = if chunked {
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"
                };
                if s.write_all(head).await.is_err() {
                    return;
                }
                let data = vec![b'x'; 4096];
                loop {
                    let ok = if chunked {
                        s.write_all(b"1000\r\n").await.is_ok()
                            && s.write_all(&data).await.is_ok()
                            && s.write_all(b"\r\n").await.is_ok()
                    } else {
                        s.write_all(&data).await.is_ok()
                    };
                    if !ok {
                        return;
                    }
                    w.fetch_add(data.len(), Ordering::SeqCst);
                }
            });
        }
    });
    (addr, written)
}

#[tokio::test]
async fn endless_body_is_cut_at_max_body() {
    for chunked in [true, false] {
        let (addr, written) = endless_server(chunked).await;
        let c = client_with(DestinationPolicy::insecure(), |c| {
            c.max_body = 10_000;
            c.total_timeout = Duration::from_secs(5);
        });
        let start = Instant::now();
        let res = send(&c, get(&format!("http://{addr}/"))).await.unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(res.status, 200);
        assert!(res.body_truncated);
        assert_eq!(res.body.len(), 10_000);
        assert!(res.body.iter().all(|&b| b == b'x'));
        // The connection was dropped: the server stops being able to write.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let a = written.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let b = written.load(Ordering::SeqCst);
        assert_eq!(
            a, b,
            "the server is still streaming into a dropped connection"
        );
    }
}

#[tokio::test]
async fn body_of_exactly_max_body_is_not_truncated() {
    let body = "y".repeat(1000);
    let server = serve(move |_| response("200 OK", "", &body)).await;
    let c = client_with(DestinationPolicy::insecure(), |c| c.max_body = 1000);
    let res = send(&c, get(&server.url("/"))).await.unwrap();
    assert_eq!(res.body.len(), 1000);
    assert!(!res.body_truncated);

    let c = client_with(DestinationPolicy::insecure(), |c| c.max_body = 999);
    let res = send(&c, get(&server.url("/"))).await.unwrap();
    assert_eq!(res.body.len(), 999);
    assert!(res.body_truncated);

    let c = client_with(DestinationPolicy::insecure(), |c| c.max_body = 0);
    let res = send(&c, get(&server.url("/"))).await.unwrap();
    assert!(res.body.is_empty());
    assert!(res.body_truncated);
}

#[tokio::test]
async fn unresolvable_name_is_dns() {
    let c = client_with(DestinationPolicy::insecure(), |c| {
        c.total_timeout = Duration::from_secs(5);
    });
    let err = send(&c, get("http://does-not-exist.invalid/"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind,
            TransportErrorKind::Dns | TransportErrorKind::Timeout
        ),
        "{err}"
    );
    if err.kind == TransportErrorKind::Dns {
        assert!(err.message.contains("does-not-exist.invalid"), "{err}");
    }
}

#[tokio::test]
async fn keep_alive_reuses_the_connection() {
    let server = serve(|_| response("200 OK", "", "ok")).await;
    let c = client(DestinationPolicy::insecure());
    for _ in 0..3 {
        let res = send(&c, post(&server.url("/"), b"{}")).await.unwrap();
        assert_eq!(res.status, 200);
    }
    // A clone shares the pool.
    let res = send(&c.clone(), get(&server.url("/"))).await.unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(server.seen.lock().unwrap().len(), 4);
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn https_to_plain_http_port_is_tls() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await; // the ClientHello
            let _ = s
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
        }
    });
    let c = client_with(DestinationPolicy::insecure(), |c| {
        c.total_timeout = Duration::from_secs(5);
    });
    let err = send(&c, get(&format!("https://{addr}/")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Tls, "{err}");

    // A server that closes during the handshake: also a TLS failure (or a reset).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            drop(s);
        }
    });
    let err = send(&c, get(&format!("https://{addr}/")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind,
            TransportErrorKind::Tls | TransportErrorKind::Connect
        ),
        "{err}"
    );
}

#[tokio::test]
async fn odd_requests_are_errors_not_panics() {
    let c = client(DestinationPolicy::insecure());
    let err = send(&c, get("/relative")).await.unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Other);
    let err = send(&c, get("ftp://127.0.0.1/")).await.unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Other);
    // Always blocked, even under the insecure policy; never connected to.
    let err = send(&c, get("http://169.254.169.254/latest/meta-data/"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Blocked, "{err}");
    assert!(err.message.contains("cloud metadata"), "{err}");
    let err = send(&c, get("http://0.0.0.0:9/")).await.unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Blocked, "{err}");
}

#[tokio::test]
async fn malformed_response_is_other() {
    let server = serve(|_| b"this is not http\r\n\r\n".to_vec()).await;
    let err = send(
        &client(DestinationPolicy::insecure()),
        get(&server.url("/")),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Other, "{err}");
}
