//! Request-level bounds applied to every service's router: a cap on requests
//! in flight (`503` with `Retry-After` beyond it), a deadline for the request
//! body (`408`), and a deadline for the answer (`408`).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tower_http::timeout::TimeoutLayer;

use super::HttpLimits;
use crate::error::ApiError;

/// Liveness must answer even when the service is saturated.
const EXEMPT: &str = "/healthz";

/// Wraps `router` in the request-level bounds of `limits`.
pub(super) fn apply(router: Router, limits: &HttpLimits) -> Router {
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    router
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(middleware::from_fn_with_state(
            limits.body_read_timeout,
            body_deadline,
        ))
        .layer(middleware::from_fn_with_state(in_flight, limit_in_flight))
}

async fn limit_in_flight(
    State(slots): State<Arc<Semaphore>>,
    req: Request,
    next: Next,
) -> Response {
    if req.uri().path() == EXEMPT {
        return next.run(req).await;
    }
    let Ok(_permit) = slots.try_acquire() else {
        return ApiError::unavailable(
            "overloaded",
            "too many requests in progress; retry shortly",
            1,
        )
        .into_response();
    };
    next.run(req).await
}

async fn body_deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    use http_body::Body as _;
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let fired = Arc::new(AtomicBool::new(false));
    let req = req.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            fired: fired.clone(),
            limit,
        })
    });
    let res = next.run(req).await;
    if fired.load(Ordering::Relaxed) {
        tracing::info!(?limit, "request body not received in time");
        return ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the request body did not arrive within {limit:?}"),
        )
        .into_response();
    }
    res
}

#[derive(Debug, thiserror::Error)]
#[error("request body not received within {0:?}")]
struct BodyTimeout(Duration);

/// A request body that fails once `deadline` passes.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
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
        match this.deadline.as_mut().poll(cx) {
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
