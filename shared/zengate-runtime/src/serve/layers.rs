//! Request-level bounds applied to every service's router: a cap on requests
//! in flight (`503` with `Retry-After` beyond it), a deadline for the request
//! body (`408`), and a deadline for the answer (`408`).
//!
//! One layer does all three, with one boxed future per request: a stack of
//! middlewares would clone the inner service and box a future at each level,
//! and that allocation churn showed up in every service's request profile.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use super::HttpLimits;
use crate::error::ApiError;

/// Liveness must answer even when the service is saturated.
const EXEMPT: &str = "/healthz";

/// Wraps `router` in the request-level bounds of `limits`.
pub(super) fn apply(router: Router, limits: &HttpLimits) -> Router {
    router.layer(Bounds {
        slots: Arc::new(Semaphore::new(limits.max_in_flight)),
        body_timeout: limits.body_read_timeout,
        request_timeout: limits.request_timeout,
    })
}

/// The bounds shared by every route of one server.
#[derive(Debug, Clone)]
struct Bounds {
    /// One permit per request in flight.
    slots: Arc<Semaphore>,
    body_timeout: Duration,
    request_timeout: Duration,
}

impl<S> Layer<S> for Bounds {
    type Service = Bounded<S>;

    fn layer(&self, inner: S) -> Bounded<S> {
        Bounded {
            inner,
            bounds: self.clone(),
        }
    }
}

/// A route's service within the [`Bounds`].
#[derive(Debug, Clone)]
struct Bounded<S> {
    inner: S,
    bounds: Bounds,
}

type BoxedAnswer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> Service<Request> for Bounded<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxedAnswer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> BoxedAnswer {
        // The clone takes the place of the service that was made ready.
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        let bounds = self.bounds.clone();
        Box::pin(async move { Ok(bounds.run(inner, req).await) })
    }
}

impl Bounds {
    async fn run<S>(self, mut inner: S, req: Request) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible>,
    {
        use http_body::Body as _;
        let _permit = if req.uri().path() == EXEMPT {
            None
        } else {
            match self.slots.try_acquire() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    return ApiError::unavailable(
                        "overloaded",
                        "too many requests in progress; retry shortly",
                        1,
                    )
                    .into_response();
                }
            }
        };
        // Only a request with a body to wait for gets the deadline (and its
        // flag): a bodiless one allocates nothing here.
        let (req, fired) = if req.body().is_end_stream() {
            (req, None)
        } else {
            let fired = Arc::new(AtomicBool::new(false));
            let limit = self.body_timeout;
            let deadline = Instant::now() + limit;
            let req = req.map(|inner| {
                Body::new(DeadlineBody {
                    inner,
                    deadline,
                    timer: None,
                    fired: fired.clone(),
                    limit,
                })
            });
            (req, Some(fired))
        };
        let answer = tokio::time::timeout(self.request_timeout, inner.call(req)).await;
        if fired.is_some_and(|f| f.load(Ordering::Relaxed)) {
            let limit = self.body_timeout;
            tracing::info!(?limit, "request body not received in time");
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("the request body did not arrive within {limit:?}"),
            )
            .into_response();
        }
        match answer {
            Ok(Ok(res)) => res,
            Ok(Err(never)) => match never {},
            Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("request body not received within {0:?}")]
struct BodyTimeout(Duration);

/// A request body that fails once `deadline` passes. The timer is armed only
/// when the body is first waited for: most bodies arrive with their headers
/// and never need one.
struct DeadlineBody {
    inner: Body,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    fired: Arc<AtomicBool>,
    limit: Duration,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.fired.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(axum::Error::new(BodyTimeout(this.limit)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
