//! Benchmark baseline: a bare hyper server that answers every request with a
//! fixed 302. hop's redirect throughput is reported as a ratio to this.
//! Usage: bare_redirect 127.0.0.1:9000

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let listener = TcpListener::bind(&addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = service_fn(|_req| async {
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(StatusCode::FOUND)
                        .header("location", "https://example.com/")
                        .header("cache-control", "private, max-age=0")
                        .body(Empty::<Bytes>::new())
                        .expect("static response"),
                )
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
