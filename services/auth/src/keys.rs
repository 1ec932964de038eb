//! Signing keys and their rotation without a restart.
//!
//! Secrets come inline or from files (Kubernetes secrets are mounted files that
//! change in place). [`KeyStore::reload`] re-reads every source and swaps in a
//! new [`Keys`] atomically: requests already signing keep the old `Arc`, new
//! requests see the new keys. A failed reload keeps the current keys.

use std::sync::{Arc, RwLock};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zengate_core::Secret;
use zengate_runtime::ConfigError;
use zengate_runtime::config::read_secret_file;

pub type HmacSha256 = Hmac<Sha256>;

/// Where one secret is read from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    Inline(Secret),
    /// `var` is the `…_FILE` variable, for error messages.
    File {
        var: String,
        path: String,
    },
}

impl SecretSource {
    fn load(&self) -> Result<Secret, ConfigError> {
        match self {
            SecretSource::Inline(s) => Ok(s.clone()),
            SecretSource::File { var, path } => read_secret_file(var, path),
        }
    }
}

/// Every configured secret source.
#[derive(Debug, Clone)]
pub struct KeySources {
    /// `ZENDESK_JWT_SHARED_SECRET`: widget and chat tokens.
    pub widget: SecretSource,
    /// The active Messaging key: `ZENDESK_MESSAGING_KEY_ID` and its secret.
    pub messaging: Option<(String, SecretSource)>,
    /// `ZENDESK_MESSAGING_KEYS`: further known `kid:secret` pairs.
    pub messaging_keys: Option<SecretSource>,
}

/// One Messaging key.
pub struct MessagingKey {
    pub kid: String,
    pub mac: HmacSha256,
}

impl std::fmt::Debug for MessagingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessagingKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A consistent set of keys, swapped as a whole.
pub struct Keys {
    pub widget: HmacSha256,
    /// Active key first, then the other known keys.
    pub messaging: Vec<MessagingKey>,
    /// SHA-256 over every secret: tells whether a reload changed anything.
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("messaging_kids", &self.messaging_kids())
            .finish_non_exhaustive()
    }
}

fn mac(var: &str, secret: &Secret) -> Result<HmacSha256, ConfigError> {
    HmacSha256::new_from_slice(secret.expose().as_bytes())
        .map_err(|_| ConfigError::invalid(var, "unusable HMAC key"))
}

/// Parses `kid:secret,kid2:secret2`.
fn parse_key_list(list: &Secret) -> Result<Vec<(String, Secret)>, ConfigError> {
    const VAR: &str = "ZENDESK_MESSAGING_KEYS";
    list.expose()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| match item.split_once(':') {
            Some((kid, secret)) if !kid.trim().is_empty() && !secret.trim().is_empty() => {
                Ok((kid.trim().to_owned(), Secret::new(secret.trim())))
            }
            // Never echo the item: it holds a secret.
            _ => Err(ConfigError::invalid(
                VAR,
                "expected a comma-separated list of kid:secret",
            )),
        })
        .collect()
}

impl KeySources {
    /// Reads every source and builds the keys.
    pub fn load(&self) -> Result<Keys, ConfigError> {
        let mut fp = Sha256::new();
        let widget = self.widget.load()?;
        fp.update(widget.expose().as_bytes());
        fp.update([0]);
        let mut messaging = Vec::new();
        if let Some((kid, source)) = &self.messaging {
            let secret = source.load()?;
            fp.update(kid.as_bytes());
            fp.update([0]);
            fp.update(secret.expose().as_bytes());
            fp.update([0]);
            messaging.push(MessagingKey {
                kid: kid.clone(),
                mac: mac("ZENDESK_MESSAGING_SECRET", &secret)?,
            });
        }
        if let Some(source) = &self.messaging_keys {
            for (kid, secret) in parse_key_list(&source.load()?)? {
                fp.update(kid.as_bytes());
                fp.update([0]);
                fp.update(secret.expose().as_bytes());
                fp.update([0]);
                if messaging.iter().any(|k| k.kid == kid) {
                    continue;
                }
                messaging.push(MessagingKey {
                    mac: mac("ZENDESK_MESSAGING_KEYS", &secret)?,
                    kid,
                });
            }
        }
        Ok(Keys {
            widget: mac("ZENDESK_JWT_SHARED_SECRET", &widget)?,
            messaging,
            fingerprint: fp.finalize().into(),
        })
    }
}

impl Keys {
    /// The key new Messaging tokens are signed with, when Messaging is configured.
    pub fn active_messaging(&self) -> Option<&MessagingKey> {
        if self.messaging.is_empty() {
            None
        } else {
            self.messaging.first()
        }
    }

    /// Known `kid`s, active first.
    pub fn messaging_kids(&self) -> Vec<&str> {
        self.messaging.iter().map(|k| k.kid.as_str()).collect()
    }

    /// The key for `kid` (verification of tokens signed before a rotation).
    pub fn messaging_key(&self, kid: &str) -> Option<&MessagingKey> {
        self.messaging.iter().find(|k| k.kid == kid)
    }
}

/// The live keys plus where to reload them from.
#[derive(Debug)]
pub struct KeyStore {
    sources: KeySources,
    /// Active Messaging only if configured at start-up: toggling endpoints
    /// on and off at run time would surprise clients.
    messaging_enabled: bool,
    current: RwLock<Arc<Keys>>,
}

/// Outcome of a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    Changed,
    Unchanged,
}

impl KeyStore {
    pub fn new(sources: KeySources) -> Result<Self, ConfigError> {
        let keys = sources.load()?;
        Ok(Self {
            messaging_enabled: sources.messaging.is_some(),
            sources,
            current: RwLock::new(Arc::new(keys)),
        })
    }

    /// The keys to sign with now.
    pub fn current(&self) -> Arc<Keys> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn messaging_enabled(&self) -> bool {
        self.messaging_enabled
    }

    /// Re-reads every source; swaps only when something changed. On error the
    /// current keys stay (a half-written file must not stop issuance).
    pub fn reload(&self) -> Result<Reload, ConfigError> {
        let fresh = self.sources.load()?;
        if fresh.fingerprint == self.current().fingerprint {
            return Ok(Reload::Unchanged);
        }
        let mut slot = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Arc::new(fresh);
        Ok(Reload::Changed)
    }

    /// Reloads and logs the outcome (never the secrets).
    pub fn reload_logged(&self, trigger: &str) {
        match self.reload() {
            Ok(Reload::Changed) => tracing::info!(trigger, "signing secrets reloaded"),
            Ok(Reload::Unchanged) => tracing::debug!(trigger, "signing secrets unchanged"),
            Err(e) => {
                tracing::error!(trigger, error = %e, "secret reload failed; keeping the current keys")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_list_errors_do_not_leak() {
        let e = parse_key_list(&Secret::new("a:b,leaky")).unwrap_err();
        assert!(!e.to_string().contains("leaky"));
        let l = parse_key_list(&Secret::new("a:b, c:d ,")).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].0, "c");
    }

    #[test]
    fn reload_detects_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "one\n").unwrap();
        let store = KeyStore::new(KeySources {
            widget: SecretSource::File {
                var: "ZENDESK_JWT_SHARED_SECRET_FILE".into(),
                path: path.to_string_lossy().into(),
            },
            messaging: None,
            messaging_keys: None,
        })
        .unwrap();
        assert_eq!(store.reload().unwrap(), Reload::Unchanged);
        std::fs::write(&path, "two\n").unwrap();
        assert_eq!(store.reload().unwrap(), Reload::Changed);
        std::fs::write(&path, "").unwrap();
        assert!(store.reload().is_err());
        assert!(!store.messaging_enabled());
    }
}
