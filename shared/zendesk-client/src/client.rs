//! The HTTP client: one origin, bound credentials, bounded retries.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use tracing::{Instrument, field};

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::model::{Article, Comment, CommentThread, NewTicket, Ticket, TicketUpdate, User};
use crate::request::ApiRequest;
use crate::retry::{AttemptFailure, Replay, backoff, may_retry, parse_retry_after};
use crate::wire;

/// Largest response body read; a Ticketing API answer is far smaller, so
/// anything bigger is refused rather than buffered.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Zendesk's largest cursor page size.
const MAX_PAGE_SIZE: usize = 100;
/// Longest Help Center search query sent.
const MAX_SEARCH_QUERY: usize = 500;
/// Zendesk keeps idempotency keys of at most this many characters.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A Zendesk Ticketing API client bound to one account's origin and
/// credentials. Cheap to clone (shared connection pool).
#[derive(Clone)]
pub struct ZendeskClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    origin: String,
    authorization: HeaderValue,
    max_attempts: u32,
    max_backoff: Duration,
    timeout: Duration,
}

impl fmt::Debug for ZendeskClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZendeskClient")
            .field("origin", &self.inner.origin)
            .field("credentials", &"[redacted]")
            .field("timeout", &self.inner.timeout)
            .field("max_attempts", &self.inner.max_attempts)
            .field("max_backoff", &self.inner.max_backoff)
            .finish()
    }
}

/// A successful answer.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
    retry_after: Option<Duration>,
}

impl ZendeskClient {
    /// Validates the configuration (subdomain, base URL, credentials) and
    /// builds the client. Nothing is sent.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let origin = config
            .resolve_origin()
            .map_err(ClientError::InvalidConfig)?;
        if config.max_attempts == 0 {
            return Err(ClientError::InvalidConfig(
                "max_attempts must be at least 1".to_owned(),
            ));
        }
        if config.timeout.is_zero() {
            return Err(ClientError::InvalidConfig(
                "timeout must be above zero".to_owned(),
            ));
        }
        let mut authorization = HeaderValue::from_str(&config.credentials.authorization())
            .map_err(|_| {
                ClientError::InvalidConfig(
                    "credentials contain characters not allowed in a header".to_owned(),
                )
            })?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            // A redirect could carry the Authorization header elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("zengate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::InvalidConfig(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                origin,
                authorization,
                max_attempts: config.max_attempts,
                max_backoff: config.max_backoff,
                timeout: config.timeout,
            }),
        })
    }

    /// The origin every request goes to, e.g. `https://acme.zendesk.com`.
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// `GET /api/v2/tickets/{id}.json`.
    pub async fn get_ticket(&self, ticket_id: u64) -> Result<Ticket, ClientError> {
        check_id(ticket_id)?;
        let path = format!("/api/v2/tickets/{ticket_id}.json");
        let answer = self.call(ApiRequest::get(&path).ticket(ticket_id)).await?;
        decode::<wire::TicketEnvelope>(&answer.body).map(|e| e.ticket.into())
    }

    /// The `limit` most recent comments of a ticket, oldest first (newest
    /// last), following cursor pages (`page[size]`, `page[after]`). The next
    /// page is requested from this client's own origin with the returned
    /// cursor; `links.next` is not followed, so a response cannot redirect
    /// the credential to another host.
    pub async fn list_comments(
        &self,
        ticket_id: u64,
        limit: usize,
    ) -> Result<Vec<Comment>, ClientError> {
        self.comment_pages(ticket_id, limit, false)
            .await
            .map(|c| c.comments)
    }

    /// Like [`ZendeskClient::list_comments`], with the comments' authors
    /// sideloaded (`include=users`) so a conversation can name them and tell
    /// end users from staff without one request per author.
    pub async fn list_comments_with_authors(
        &self,
        ticket_id: u64,
        limit: usize,
    ) -> Result<CommentThread, ClientError> {
        self.comment_pages(ticket_id, limit, true).await
    }

    async fn comment_pages(
        &self,
        ticket_id: u64,
        limit: usize,
        with_authors: bool,
    ) -> Result<CommentThread, ClientError> {
        check_id(ticket_id)?;
        let path = format!("/api/v2/tickets/{ticket_id}/comments.json");
        let mut out = CommentThread::default();
        let mut after: Option<String> = None;
        while out.comments.len() < limit {
            let size = (limit - out.comments.len()).min(MAX_PAGE_SIZE);
            let mut query = vec![
                ("page[size]", size.to_string()),
                ("sort", "-created_at".to_owned()),
            ];
            if with_authors {
                query.push(("include", "users".to_owned()));
            }
            if let Some(cursor) = &after {
                query.push(("page[after]", cursor.clone()));
            }
            let answer = self
                .call(ApiRequest::get(&path).query(&query).ticket(ticket_id))
                .await?;
            let page: wire::CommentsPage = decode(&answer.body)?;
            let got = page.comments.len();
            let room = limit - out.comments.len();
            out.comments
                .extend(page.comments.into_iter().take(room).map(Comment::from));
            for user in page.users.into_iter().map(User::from) {
                if !out.authors.iter().any(|u| u.id == user.id) {
                    out.authors.push(user);
                }
            }
            let next = page
                .meta
                .filter(|m| m.has_more)
                .and_then(|m| m.after_cursor)
                .filter(|c| !c.is_empty());
            match next {
                // An empty page or a repeated cursor would loop forever.
                Some(cursor) if got > 0 && after.as_deref() != Some(cursor.as_str()) => {
                    after = Some(cursor);
                }
                _ => break,
            }
        }
        out.comments.reverse();
        Ok(out)
    }

    /// Help Center article search
    /// (`GET /api/v2/help_center/articles/search?query=`), at most `limit`
    /// results (1 to 100), best match first. The query is sent as a query
    /// parameter only; it cannot change the host or path.
    pub async fn search_articles(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Article>, ClientError> {
        let query = query.trim();
        if query.is_empty() || query.chars().count() > MAX_SEARCH_QUERY {
            return Err(ClientError::InvalidRequest(format!(
                "a search query must be 1 to {MAX_SEARCH_QUERY} characters"
            )));
        }
        let per_page = limit.clamp(1, MAX_PAGE_SIZE);
        let params = [
            ("query", query.to_owned()),
            ("per_page", per_page.to_string()),
        ];
        let search = ApiRequest::get("/api/v2/help_center/articles/search").query(&params);
        let answer = self.call(search).await?;
        let page: wire::ArticleSearchPage = decode(&answer.body)?;
        Ok(page
            .results
            .into_iter()
            .take(per_page)
            .map(Article::from)
            .collect())
    }

    /// `POST /api/v2/tickets.json` with `Idempotency-Key`, so a retried or
    /// repeated create yields the original ticket, never a second one.
    pub async fn create_ticket(
        &self,
        ticket: &NewTicket,
        idempotency_key: &str,
    ) -> Result<Ticket, ClientError> {
        if idempotency_key.is_empty()
            || idempotency_key.len() > MAX_IDEMPOTENCY_KEY
            || !idempotency_key.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ClientError::InvalidRequest(
                "the idempotency key must be 1 to 255 visible ASCII characters".to_owned(),
            ));
        }
        let body = wire::create_body(ticket)
            .map_err(|e| ClientError::InvalidRequest(format!("cannot encode ticket: {e}")))?;
        let answer = self
            .call(
                ApiRequest::new(Method::POST, "/api/v2/tickets.json", Replay::Keyed)
                    .body(body)
                    .idempotency_key(idempotency_key),
            )
            .await?;
        decode::<wire::TicketEnvelope>(&answer.body).map(|e| e.ticket.into())
    }

    /// `PUT /api/v2/tickets/{id}.json`; a comment always carries an explicit
    /// `public`. Not retried after it may have reached Zendesk (see
    /// [`ClientError::is_retryable`]): the caller guards against doubles.
    pub async fn update_ticket(
        &self,
        ticket_id: u64,
        update: &TicketUpdate,
    ) -> Result<Ticket, ClientError> {
        check_id(ticket_id)?;
        if update.is_empty() {
            return Err(ClientError::InvalidRequest(
                "the ticket update changes nothing".to_owned(),
            ));
        }
        let body = wire::update_body(update)
            .map_err(|e| ClientError::InvalidRequest(format!("cannot encode update: {e}")))?;
        let path = format!("/api/v2/tickets/{ticket_id}.json");
        let answer = self
            .call(
                ApiRequest::new(Method::PUT, &path, Replay::Unsafe)
                    .body(body)
                    .ticket(ticket_id),
            )
            .await?;
        decode::<wire::TicketEnvelope>(&answer.body).map(|e| e.ticket.into())
    }

    /// `GET /api/v2/users/me.json`: the user the credentials belong to
    /// (comments it wrote are zengate's own).
    pub async fn me(&self) -> Result<User, ClientError> {
        let answer = self.call(ApiRequest::get("/api/v2/users/me.json")).await?;
        decode::<wire::UserEnvelope>(&answer.body).map(|e| e.user.into())
    }

    /// Runs one logical call with retries inside a `zendesk.request` span.
    async fn call(&self, req: ApiRequest<'_>) -> Result<Answer, ClientError> {
        let span = tracing::info_span!(
            "zendesk.request",
            otel.kind = "client",
            method = %req.method,
            path = %req.path,
            ticket_id = field::Empty,
            status = field::Empty,
            attempt = field::Empty,
        );
        if let Some(id) = req.ticket_id {
            span.record("ticket_id", id);
        }
        self.call_with_retries(&req).instrument(span).await
    }

    async fn call_with_retries(&self, req: &ApiRequest<'_>) -> Result<Answer, ClientError> {
        let span = tracing::Span::current();
        let path = req.path;
        let url = format!("{}{}", self.inner.origin, path);
        let max = self.inner.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            span.record("attempt", attempt);
            let (error, failure, retry_after) = match self.attempt(req, &url).await {
                Ok(answer) if answer.status.is_success() => {
                    span.record("status", answer.status.as_u16());
                    return Ok(answer);
                }
                Ok(answer) => {
                    span.record("status", answer.status.as_u16());
                    classify_status(path, &answer)
                }
                Err((error, failure)) => (error, failure, None),
            };
            if !failure.is_some_and(|f| may_retry(req.replay, f)) {
                return Err(error);
            }
            if attempt >= max {
                tracing::warn!(attempt, %error, "Zendesk request failed after the last attempt");
                return Err(error);
            }
            let delay = match retry_after {
                Some(wait) if wait > self.inner.max_backoff => {
                    tracing::warn!(
                        attempt,
                        retry_after_s = wait.as_secs(),
                        "Zendesk asked to wait longer than the maximum backoff"
                    );
                    return Err(error);
                }
                Some(wait) => wait,
                None => backoff(attempt, self.inner.max_backoff),
            };
            tracing::info!(attempt, delay_ms = delay.as_millis() as u64, %error, "retrying Zendesk request");
            tokio::time::sleep(delay).await;
        }
    }

    /// One HTTP exchange. Errors carry how far the request got.
    async fn attempt(
        &self,
        req: &ApiRequest<'_>,
        url: &str,
    ) -> Result<Answer, (ClientError, Option<AttemptFailure>)> {
        let (method, query, body, idempotency_key) = (
            &req.method,
            req.query,
            req.body.as_deref(),
            req.idempotency_key,
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            self.inner.authorization.clone(),
        );
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        if let Some(tp) = crate::trace::current_traceparent()
            && let Ok(v) = HeaderValue::from_str(&tp)
        {
            headers.insert(zengate_core::headers::TRACEPARENT, v);
        }
        if let Some(key) = idempotency_key
            && let Ok(v) = HeaderValue::from_str(key)
        {
            headers.insert("idempotency-key", v);
        }
        let mut req = self
            .inner
            .http
            .request(method.clone(), url)
            .headers(headers);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_vec());
        }
        let mut resp = req.send().await.map_err(transport_error)?;
        let status = resp.status();
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
            if buf.len() + chunk.len() > MAX_BODY {
                return Err((
                    ClientError::Decode("response body too large".to_owned()),
                    None,
                ));
            }
            buf.extend_from_slice(&chunk);
        }
        // Read after the body so the header map is not borrowed across awaits.
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        Ok(Answer {
            status,
            body: buf,
            retry_after,
        })
    }
}

fn check_id(id: u64) -> Result<(), ClientError> {
    if id == 0 {
        Err(ClientError::InvalidId)
    } else {
        Ok(())
    }
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::Decode(e.to_string()))
}

/// Maps a `reqwest` failure to a typed error and how far the request got.
/// The message names the cause chain but never a header.
fn transport_error(e: reqwest::Error) -> (ClientError, Option<AttemptFailure>) {
    if e.is_timeout() {
        return (ClientError::Timeout, Some(AttemptFailure::AfterSend));
    }
    let failure = if e.is_connect() {
        AttemptFailure::Connect
    } else {
        AttemptFailure::AfterSend
    };
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    (ClientError::Transport(msg), Some(failure))
}

/// Maps a non-success answer to a typed error, whether it may be retried,
/// and Zendesk's requested wait.
fn classify_status(
    path: &str,
    answer: &Answer,
) -> (ClientError, Option<AttemptFailure>, Option<Duration>) {
    let status = answer.status.as_u16();
    let (error, description) = wire::parse_error_body(&answer.body);
    match status {
        404 => (
            ClientError::NotFound {
                path: path.to_owned(),
                description,
            },
            None,
            None,
        ),
        429 => (
            ClientError::RateLimited {
                retry_after: answer.retry_after,
            },
            Some(AttemptFailure::Refused),
            answer.retry_after,
        ),
        400 if error.as_deref() == Some("IdempotentRequestError") => {
            (ClientError::Idempotency { description }, None, None)
        }
        _ => {
            let failure = match status {
                503 => Some(AttemptFailure::Refused),
                500..=599 => Some(AttemptFailure::ServerError),
                _ => None,
            };
            let error = error.unwrap_or_else(|| {
                answer
                    .status
                    .canonical_reason()
                    .unwrap_or("UnknownError")
                    .to_owned()
            });
            (
                ClientError::Api {
                    status,
                    error,
                    description,
                },
                failure,
                if status == 503 {
                    answer.retry_after
                } else {
                    None
                },
            )
        }
    }
}
