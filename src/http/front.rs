//! What each connection's requests meet first: redirects (`GET` or `HEAD`
//! of `/{slug}`) are answered here, before the router and its layers;
//! everything else goes to [`super::router`] unchanged.
//!
//! Why (issue 13, docs/architecture.md "The click path"): a redirect is
//! most of what hop serves, and the router's layers cost it more than the
//! redirect itself (a boxed, cloned service per layer, a request id drawn
//! and propagated, a tracing span built and dropped, the path matched
//! against every route). Here a redirect is one check of the path and a
//! call of the same handler body ([`super::redirect::answer`]), and its
//! answer carries what the layers would have added (`x-request-id`).
//!
//! Which requests: `GET` or `HEAD`, a path of one segment that is a valid
//! slug as it stands (no percent-encoding, which the router would decode)
//! and not a reserved word (hop's own pages: `/healthz`, `/links`, …), and
//! a head within [`super::ops::MAX_HEAD`] (beyond, the router's 431).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use axum::response::Response;
use tower::Service;

use crate::domain::{is_reserved, is_slug};
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The service each connection runs: redirects here, the rest to `router`.
#[derive(Clone)]
pub struct Front {
    router: axum::Router,
    state: AppState,
    peer: SocketAddr,
}

impl Front {
    pub fn new(router: axum::Router, state: AppState, peer: SocketAddr) -> Front {
        Front {
            router,
            state,
            peer,
        }
    }
}

/// The slug of a request the fast path answers, if it is one.
pub fn redirect_slug<B>(req: &Request<B>) -> Option<&str> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return None;
    }
    let slug = req.uri().path().strip_prefix('/')?;
    (is_slug(slug) && !is_reserved(slug) && super::ops::head_size(req) <= super::ops::MAX_HEAD)
        .then_some(slug)
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<B> Service<Request<B>> for Front
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready, and so is the fast path.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Answer {
        if redirect_slug(&req).is_some() {
            let state = self.state.clone();
            let peer = self.peer.ip();
            return Box::pin(async move {
                // `redirect_slug` said so: the path is `/` and a slug.
                let slug = &req.uri().path()[1..];
                let (method, query) = (req.method().clone(), req.uri().query());
                let mut res =
                    super::redirect::answer(&state, &method, slug, peer, query, req.headers())
                        .await;
                // As `SetRequestIdLayer` and `PropagateRequestIdLayer` do on
                // the router's routes: the caller's id, or a new one.
                let id = req.headers().get(REQUEST_ID).cloned().unwrap_or_else(|| {
                    let mut buf = uuid::Uuid::encode_buffer();
                    HeaderValue::from_str(uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf))
                        .expect("a uuid is a header value")
                });
                res.headers_mut().insert(REQUEST_ID, id);
                // As axum's routes do: the length of a body whose size is
                // known, and no body for HEAD.
                if let Some(n) = axum::body::HttpBody::size_hint(res.body()).exact() {
                    res.headers_mut()
                        .entry(CONTENT_LENGTH)
                        .or_insert_with(|| HeaderValue::from(n));
                }
                if method == Method::HEAD {
                    *res.body_mut() = Body::empty();
                }
                Ok(res)
            });
        }
        req.extensions_mut().insert(ConnectInfo(self.peer));
        Box::pin(self.router.call(req.map(Body::new)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, uri: &str) -> Request<()> {
        Request::builder().method(method).uri(uri).body(()).unwrap()
    }

    #[test]
    fn only_get_and_head_of_a_plain_slug_take_the_fast_path() {
        assert_eq!(
            redirect_slug(&req(Method::GET, "/abc-D_9")),
            Some("abc-D_9")
        );
        assert_eq!(
            redirect_slug(&req(Method::HEAD, "/abc?utm_source=x")),
            Some("abc")
        );
        for uri in [
            "/",
            "/a/b",
            "/a%62c",
            "/a.b",
            "/%C3%A9",
            &format!("/{}", "x".repeat(65)),
        ] {
            assert_eq!(redirect_slug(&req(Method::GET, uri)), None, "{uri}");
        }
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
            assert_eq!(
                redirect_slug(&req(method.clone(), "/abc")),
                None,
                "{method}"
            );
        }
    }

    #[test]
    fn the_routers_own_pages_are_never_taken_for_slugs() {
        // Every one-segment route of `http::router` (and the first segment
        // of its longer ones): a reserved word, so the router answers it.
        for page in [
            "healthz", "readyz", "metrics", "login", "logout", "links", "report", "static", "api",
            "Healthz", "METRICS",
        ] {
            assert_eq!(
                redirect_slug(&req(Method::GET, &format!("/{page}"))),
                None,
                "{page}"
            );
        }
    }

    #[test]
    fn a_head_over_the_bound_goes_to_the_router_for_its_431() {
        let mut r = req(Method::GET, "/abc");
        r.headers_mut().insert(
            "x-big",
            HeaderValue::from_str(&"a".repeat(super::super::ops::MAX_HEAD)).unwrap(),
        );
        assert_eq!(redirect_slug(&r), None);
    }
}
