//! A minimal hyper server that hands each request to an async function as an
//! `http::Request<Bytes>`: the glue an integrator writes once. Shared by the examples.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Serves `handler` on `listener` until `shutdown` resolves. Bodies over `body_limit` bytes
/// are refused with 413 before the handler sees them (the inbound handler checks again).
pub async fn serve<F, Fut>(
    listener: TcpListener,
    body_limit: usize,
    handler: F,
    shutdown: impl Future<Output = ()>,
) where
    F: Fn(Request<Bytes>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Bytes>> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let handler = handler.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let resp = match Limited::new(body, body_limit).collect().await {
                        Ok(collected) => {
                            handler(Request::from_parts(parts, collected.to_bytes())).await
                        }
                        Err(_) => {
                            let mut r = Response::new(Bytes::from_static(
                                br#"{"success":false,"error":{"code":"payload_too_large","message":"the body is too large"}}"#,
                            ));
                            *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                            r
                        }
                    };
                    Ok::<_, Infallible>(resp.map(Full::new))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Binds `addr`.
pub async fn bind(addr: &str) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// A JSON response.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Bytes> {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}
