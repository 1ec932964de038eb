//! A dev-only Zendesk Ticketing API simulator that also sends signed webhooks.
//!
//! Tests start it in-process ([`Simulator::start`]) and inspect it directly;
//! other processes drive it over HTTP under `/__sim/...`. It keeps
//! everything in memory and hands out ids above 2^53.

mod api;
mod config;
mod control;
mod help_center;
mod store;
mod webhook;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use base64::Engine as _;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{DEFAULT_FIRST_TICKET_ID, SimConfig, WebhookTarget};
pub use help_center::SimArticle;
pub use store::{Fault, RecordedRequest, SimComment, SimTicket, SimUser, WebhookDelivery};

use store::{Change, Store};

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot bind the simulator: {0}")]
    Bind(#[from] std::io::Error),
}

/// Where the simulator listens: an already bound listener (port 0 in tests)
/// or an address to bind.
#[derive(Debug)]
pub enum Bind {
    Listener(TcpListener),
    Addr(SocketAddr),
}

impl From<TcpListener> for Bind {
    fn from(l: TcpListener) -> Self {
        Bind::Listener(l)
    }
}

impl From<SocketAddr> for Bind {
    fn from(a: SocketAddr) -> Self {
        Bind::Addr(a)
    }
}

/// State shared by the API, the control routes and the webhook sender.
#[derive(Debug)]
pub(crate) struct SimState {
    pub config: SimConfig,
    pub base_url: String,
    store: Mutex<Store>,
    webhook: RwLock<Option<WebhookTarget>>,
    changes: mpsc::UnboundedSender<Change>,
    authorization: String,
}

pub(crate) type Shared = Arc<SimState>;

impl SimState {
    pub fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let mut guard = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    pub fn webhook(&self) -> Option<WebhookTarget> {
        self.webhook
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Queues a webhook delivery; never blocks.
    pub fn emit(&self, change: Change) {
        let _ = self.changes.send(change);
    }

    pub fn authorization_matches(&self, header: &str) -> bool {
        let Some((scheme, value)) = header.split_once(' ') else {
            return false;
        };
        scheme.eq_ignore_ascii_case("basic") && value.trim() == self.authorization
    }

    pub fn create_enduser_ticket(
        &self,
        subject: &str,
        body: &str,
        requester_name: &str,
        requester_email: &str,
    ) -> SimTicket {
        let (ticket, change) = self.with_store(|s| {
            let requester = s.user_for(requester_name, requester_email);
            s.create_ticket(
                subject,
                body,
                true,
                &requester,
                requester.id,
                "web",
                Vec::new(),
                None,
                None,
            )
        });
        self.emit(change);
        ticket
    }

    pub fn add_enduser_comment(&self, ticket_id: u64, body: &str) -> Option<SimComment> {
        let (comment, change) = self.with_store(|s| {
            let requester = s.tickets.get(&ticket_id)?.requester_id;
            s.add_comment(ticket_id, requester, body, true)
        })?;
        self.emit(change);
        Some(comment)
    }
}

/// Starts simulators.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Serves the simulated API and control routes until
    /// [`SimHandle::shutdown`] (or drop of the runtime).
    pub async fn start(config: SimConfig, bind: impl Into<Bind>) -> Result<SimHandle, SimError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = match bind.into() {
            Bind::Listener(l) => l,
            Bind::Addr(a) => TcpListener::bind(a).await?,
        };
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let authorization = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}/token:{}",
            config.email,
            config.api_token.expose()
        ));
        let (tx, rx) = mpsc::unbounded_channel();
        let shared: Shared = Arc::new(SimState {
            store: Mutex::new(Store::new(&config.email, config.first_ticket_id)),
            webhook: RwLock::new(config.webhook.clone()),
            config,
            base_url,
            changes: tx,
            authorization,
        });
        let stop = CancellationToken::new();
        let router = api::routes(shared.clone()).merge(control::routes(shared.clone()));
        let server = tokio::spawn({
            let stop = stop.clone();
            async move {
                let app = router.into_make_service_with_connect_info::<SocketAddr>();
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                {
                    tracing::error!(error = %e, "simulator server failed");
                }
            }
        });
        let sender = tokio::spawn(webhook::run(shared.clone(), rx, stop.clone()));
        tracing::info!(%addr, "zendesk simulator listening");
        Ok(SimHandle {
            shared,
            addr,
            stop,
            server,
            sender,
        })
    }
}

/// A running simulator: its address and in-process inspection.
#[derive(Debug)]
pub struct SimHandle {
    shared: Shared,
    addr: SocketAddr,
    stop: CancellationToken,
    server: JoinHandle<()>,
    sender: JoinHandle<()>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`: the value for `ZENDESK_API_BASE_URL`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The API user (the credentials' owner; author of API comments).
    pub fn api_user(&self) -> SimUser {
        self.shared.with_store(|s| s.api_user.clone())
    }

    pub fn tickets(&self) -> Vec<SimTicket> {
        self.shared
            .with_store(|s| s.tickets.values().cloned().collect())
    }

    pub fn ticket(&self, ticket_id: u64) -> Option<SimTicket> {
        self.shared
            .with_store(|s| s.tickets.get(&ticket_id).cloned())
    }

    /// A ticket's comments, oldest first.
    pub fn comments(&self, ticket_id: u64) -> Vec<SimComment> {
        self.shared
            .with_store(|s| s.comments.get(&ticket_id).cloned().unwrap_or_default())
    }

    /// Every Ticketing API request received, in arrival order (control
    /// routes are not recorded).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .with_store(|s| s.requests.iter().cloned().collect())
    }

    pub fn clear_requests(&self) {
        self.shared.with_store(|s| s.requests.clear());
    }

    /// Injects a fault into matching API requests.
    pub fn inject(&self, fault: Fault) {
        self.shared.with_store(|s| s.faults.push(fault));
    }

    /// The Help Center articles (seeded ones first).
    pub fn articles(&self) -> Vec<SimArticle> {
        self.shared.with_store(|s| s.articles.clone())
    }

    /// Adds a Help Center article that search can find.
    pub fn add_article(&self, title: &str, body: &str) -> SimArticle {
        self.shared.with_store(|s| s.add_article(title, body))
    }

    /// Adds a comment by the API user (an agent), public or internal, as if
    /// written in the agent UI; sends `ticket.comment_added`. `None` when the
    /// ticket does not exist.
    pub fn add_agent_comment(
        &self,
        ticket_id: u64,
        body: &str,
        public: bool,
    ) -> Option<SimComment> {
        let (comment, change) = self.shared.with_store(|s| {
            let author = s.api_user.id;
            s.add_comment(ticket_id, author, body, public)
        })?;
        self.shared.emit(change);
        Some(comment)
    }

    /// Webhook deliveries so far (attempts, last status, delivered).
    pub fn deliveries(&self) -> Vec<WebhookDelivery> {
        self.shared.with_store(|s| s.deliveries.clone())
    }

    /// Replaces the webhook target (e.g. once the receiver's port is known).
    pub fn set_webhook(&self, target: Option<WebhookTarget>) {
        *self
            .shared
            .webhook
            .write()
            .unwrap_or_else(PoisonError::into_inner) = target;
    }

    /// An end-user opens a ticket through the web (sends `ticket.created`).
    pub fn create_enduser_ticket(
        &self,
        subject: &str,
        body: &str,
        requester_name: &str,
        requester_email: &str,
    ) -> SimTicket {
        self.shared
            .create_enduser_ticket(subject, body, requester_name, requester_email)
    }

    /// The ticket's requester adds a public comment (sends
    /// `ticket.comment_added` with `is_staff: false`). `None` when the
    /// ticket does not exist.
    pub fn add_enduser_comment(&self, ticket_id: u64, body: &str) -> Option<SimComment> {
        self.shared.add_enduser_comment(ticket_id, body)
    }

    /// Stops serving and sending; waits for both to finish.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        let _ = (&mut self.server).await;
        let _ = (&mut self.sender).await;
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
