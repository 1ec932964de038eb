//! The in-flight body byte budget: every body byte the ingress holds is
//! counted against one limit, from the declared `Content-Length` before a
//! byte is read and per chunk while a body without one streams in. A delivery
//! that does not fit is answered `503` with `Retry-After` (Zendesk retries it)
//! instead of pushing memory past what the deployment allows.

use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes that may be held by request bodies at once.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    /// Bytes reserved right now (exported).
    reserved: Gauge,
}

/// Bytes reserved for one body, returned to the budget on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Semaphore>,
    reserved: Gauge,
    held: Option<OwnedSemaphorePermit>,
    len: usize,
}

impl BodyBudget {
    pub fn new(total: usize, reserved: Gauge) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(total.min(Semaphore::MAX_PERMITS))),
            reserved,
        }
    }

    /// Reserves `n` bytes, or `None` when they do not fit right now.
    pub fn reserve(&self, n: usize) -> Option<Reservation> {
        let mut r = Reservation {
            budget: self.bytes.clone(),
            reserved: self.reserved.clone(),
            held: None,
            len: 0,
        };
        r.cover(n).then_some(r)
    }

    /// Bytes not reserved right now.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

impl Reservation {
    /// Makes sure at least `total` bytes are reserved; `false` when the
    /// budget cannot cover them.
    pub fn cover(&mut self, total: usize) -> bool {
        if total <= self.len {
            return true;
        }
        let Ok(more) = u32::try_from(total - self.len) else {
            return false;
        };
        match self.budget.clone().try_acquire_many_owned(more) {
            Ok(permit) => {
                match &mut self.held {
                    Some(held) => held.merge(permit),
                    None => self.held = Some(permit),
                }
                self.len = total;
                self.reserved.inc_by(i64::from(more));
                true
            }
            Err(_) => false,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.reserved
            .dec_by(i64::try_from(self.len).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_bounded_and_returned() {
        let gauge = Gauge::default();
        let budget = BodyBudget::new(100, gauge.clone());
        let mut a = budget.reserve(60).unwrap();
        assert!(budget.reserve(50).is_none());
        assert!(a.cover(60) && a.cover(30));
        assert!(a.cover(90));
        assert_eq!(budget.available(), 10);
        assert_eq!(gauge.get(), 90);
        assert!(!a.cover(101));
        drop(a);
        assert_eq!(budget.available(), 100);
        assert_eq!(gauge.get(), 0);
        assert!(budget.reserve(100).is_some());
    }
}
