//! One logical API call as a value: method, path, query, body, idempotency
//! key, whether it may be replayed, and the ticket it concerns (for spans).

use reqwest::Method;

use crate::retry::Replay;

#[derive(Debug)]
pub(crate) struct ApiRequest<'a> {
    pub method: Method,
    pub path: &'a str,
    pub query: &'a [(&'a str, String)],
    pub body: Option<Vec<u8>>,
    pub idempotency_key: Option<&'a str>,
    pub replay: Replay,
    pub ticket_id: Option<u64>,
}

impl<'a> ApiRequest<'a> {
    /// A `GET`, safe to repeat.
    pub fn get(path: &'a str) -> Self {
        Self::new(Method::GET, path, Replay::Safe)
    }

    pub fn new(method: Method, path: &'a str, replay: Replay) -> Self {
        Self {
            method,
            path,
            query: &[],
            body: None,
            idempotency_key: None,
            replay,
            ticket_id: None,
        }
    }

    pub fn query(mut self, query: &'a [(&'a str, String)]) -> Self {
        self.query = query;
        self
    }

    /// A JSON body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self
    }

    pub fn idempotency_key(mut self, key: &'a str) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    pub fn ticket(mut self, ticket_id: u64) -> Self {
        self.ticket_id = Some(ticket_id);
        self
    }
}
