//! How a service reaches Redis: address, credentials and TLS, read from the
//! environment so a managed Redis (password file, ACL user, `rediss://` with
//! a private CA or client certificates) needs no code change.
//!
//! | variable | meaning |
//! | --- | --- |
//! | `REDIS_URL` | `redis://` or `rediss://` (TLS) `[user[:password]@]host[:port][/db]` |
//! | `REDIS_USERNAME` | ACL user (overrides the URL's user) |
//! | `REDIS_PASSWORD` / `REDIS_PASSWORD_FILE` | password (refused if the URL has one too) |
//! | `REDIS_TLS_CA_FILE` | PEM root CA(s) trusted for `rediss://` instead of the system store |
//! | `REDIS_TLS_CERT_FILE` + `REDIS_TLS_KEY_FILE` | PEM client certificate and key (`tls-auth-clients yes`) |

use std::fmt;

use redis::IntoConnectionInfo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use zengate_core::Secret;

use crate::config::{ConfigError, Env};

const URL_VAR: &str = "REDIS_URL";
const USERNAME_VAR: &str = "REDIS_USERNAME";
const PASSWORD_VAR: &str = "REDIS_PASSWORD";
const CA_VAR: &str = "REDIS_TLS_CA_FILE";
const CERT_VAR: &str = "REDIS_TLS_CERT_FILE";
const KEY_VAR: &str = "REDIS_TLS_KEY_FILE";

/// The default when `REDIS_URL` is unset: a local, unauthenticated Redis.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Redis connection settings. `Debug` never shows the password, neither the
/// separate one nor one embedded in the URL.
#[derive(Clone)]
pub struct RedisConfig {
    /// As given; may carry userinfo, hence kept as a secret.
    url: Secret,
    username: Option<String>,
    password: Option<Secret>,
    /// PEM roots replacing the system trust store.
    ca_pem: Option<Vec<u8>>,
    client_cert: Option<ClientCert>,
}

#[derive(Clone)]
struct ClientCert {
    cert_pem: Vec<u8>,
    key_pem: Secret,
}

/// Why a [`RedisConfig`] cannot become a client. Never contains a password.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RedisConfigError(String);

impl RedisConfig {
    /// Reads and checks every `REDIS_*` connection variable; certificate and
    /// key files are read (and parsed) now so a bad mount fails at start.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let url = env.string_or(URL_VAR, DEFAULT_REDIS_URL);
        Self::from_env_with_url(env, url.trim())
    }

    /// Like [`RedisConfig::from_env`], with the URL given by the caller (a
    /// command-line flag) instead of `REDIS_URL`.
    pub fn from_env_with_url(env: &Env, url: &str) -> Result<Self, ConfigError> {
        let tls = check_url(url)?;
        let info = url
            .into_connection_info()
            .map_err(|e| ConfigError::invalid(URL_VAR, e.to_string()))?;
        let url_user = info.redis_settings().username().map(str::to_owned);
        let url_has_password = info.redis_settings().password().is_some();

        let username = env.get(USERNAME_VAR).map(|u| u.trim().to_owned());
        let password = env.secret_opt(PASSWORD_VAR)?;
        if password.is_some() && url_has_password {
            let var = if env.secret_file(PASSWORD_VAR).is_some() {
                "REDIS_PASSWORD_FILE"
            } else {
                PASSWORD_VAR
            };
            return Err(ConfigError::invalid(
                var,
                format!("a password is set both in {URL_VAR} and {var}; keep only one"),
            ));
        }
        if password.is_none() && !url_has_password {
            if username.is_some() {
                return Err(ConfigError::invalid(
                    USERNAME_VAR,
                    "an ACL user needs a password (REDIS_PASSWORD, REDIS_PASSWORD_FILE or the URL)",
                ));
            }
            if url_user.is_some() {
                return Err(ConfigError::invalid(
                    URL_VAR,
                    "the URL names a user but no password (add REDIS_PASSWORD or REDIS_PASSWORD_FILE)",
                ));
            }
        }

        let ca_pem = env
            .get(CA_VAR)
            .map(|p| read_certs(CA_VAR, &p))
            .transpose()?;
        let client_cert = match (env.get(CERT_VAR), env.get(KEY_VAR)) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    CERT_VAR,
                    format!("needs {KEY_VAR} (the certificate's private key) too"),
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    KEY_VAR,
                    format!("needs {CERT_VAR} (the client certificate) too"),
                ));
            }
            (Some(cert), Some(key)) => Some(ClientCert {
                cert_pem: read_certs(CERT_VAR, &cert)?,
                key_pem: read_key(KEY_VAR, &key)?,
            }),
        };
        if !tls {
            let file_var = [
                (CA_VAR, ca_pem.is_some()),
                (CERT_VAR, client_cert.is_some()),
            ]
            .into_iter()
            .find_map(|(var, set)| set.then_some(var));
            if let Some(var) = file_var {
                return Err(ConfigError::invalid(
                    var,
                    format!("TLS files need TLS: use a rediss:// {URL_VAR} instead of redis://"),
                ));
            }
        }

        let config = Self {
            url: Secret::new(url),
            username,
            password,
            ca_pem,
            client_cert,
        };
        // Whatever the client builder still refuses is reported now, not at
        // the first request.
        config
            .client()
            .map_err(|e| ConfigError::invalid(URL_VAR, e.to_string()))?;
        Ok(config)
    }

    /// Sets the ACL user (overrides the URL's user).
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Sets the password (overrides the URL's password).
    pub fn with_password(mut self, password: Secret) -> Self {
        self.password = Some(password);
        self
    }

    /// Trusts these PEM roots instead of the system store (`rediss://`).
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Presents this PEM client certificate and key (`rediss://`).
    pub fn with_client_cert(mut self, cert_pem: impl Into<Vec<u8>>, key_pem: Secret) -> Self {
        self.client_cert = Some(ClientCert {
            cert_pem: cert_pem.into(),
            key_pem,
        });
        self
    }

    /// Whether connections use TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        is_tls_url(self.url.expose())
    }

    /// The URL with any password replaced, for logs and messages.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose())
    }

    /// A `redis::Client` (no connection yet) carrying credentials and TLS
    /// material.
    pub fn client(&self) -> Result<redis::Client, RedisConfigError> {
        let url = self.url.expose();
        if let Err(e) = check_url(url) {
            return Err(RedisConfigError(e.to_string()));
        }
        let info = url
            .into_connection_info()
            .map_err(|e| RedisConfigError(format!("{URL_VAR}: {e}")))?;
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password.expose());
        }
        let info = info.set_redis_settings(settings);
        if !self.is_tls() {
            if self.ca_pem.is_some() || self.client_cert.is_some() {
                return Err(RedisConfigError(
                    "TLS certificates need a rediss:// URL".to_owned(),
                ));
            }
            return redis::Client::open(info).map_err(|e| RedisConfigError(e.to_string()));
        }
        // The redis crate builds its rustls config on the process default
        // provider; make sure it is the workspace's ring one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if self.ca_pem.is_none() && self.client_cert.is_none() {
            return redis::Client::open(info).map_err(|e| RedisConfigError(e.to_string()));
        }
        let certificates = redis::TlsCertificates {
            client_tls: self.client_cert.as_ref().map(|c| redis::ClientTlsConfig {
                client_cert: c.cert_pem.clone(),
                client_key: c.key_pem.expose().as_bytes().to_vec(),
            }),
            root_cert: self.ca_pem.clone(),
        };
        redis::Client::build_with_tls(info, certificates)
            .map_err(|e| RedisConfigError(format!("TLS settings: {e}")))
    }
}

impl From<String> for RedisConfig {
    /// A URL alone (tests, tools); checked when the client is built.
    fn from(url: String) -> Self {
        Self {
            url: Secret::new(url),
            username: None,
            password: None,
            ca_pem: None,
            client_cert: None,
        }
    }
}

impl From<&str> for RedisConfig {
    fn from(url: &str) -> Self {
        Self::from(url.to_owned())
    }
}

impl From<&String> for RedisConfig {
    fn from(url: &String) -> Self {
        Self::from(url.clone())
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self::from(DEFAULT_REDIS_URL)
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("username", &self.username)
            .field("password", &self.password)
            .field("tls_ca", &self.ca_pem.is_some())
            .field("tls_client_cert", &self.client_cert.is_some())
            .finish()
    }
}

fn is_tls_url(url: &str) -> bool {
    url.get(..9)
        .is_some_and(|s| s.eq_ignore_ascii_case("rediss://"))
}

/// Accepts only `redis://` and `rediss://` without a fragment (the redis
/// crate reads `#insecure` as "skip certificate checks"). Returns whether
/// the URL asks for TLS.
fn check_url(url: &str) -> Result<bool, ConfigError> {
    let tls = is_tls_url(url);
    let plain = url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("redis://"));
    if !tls && !plain {
        return Err(ConfigError::invalid(
            URL_VAR,
            "expected redis://host:port or rediss://host:port (TLS)",
        ));
    }
    if url.contains('#') {
        return Err(ConfigError::invalid(
            URL_VAR,
            "a URL fragment (such as #insecure) is not supported; certificate checks stay on \
             (a '#' in a password must be percent-encoded as %23, or use REDIS_PASSWORD)",
        ));
    }
    Ok(tls)
}

/// Replaces the password in `scheme://user:password@host…` (everything
/// from the first `:` of the userinfo to the last `@`).
fn redact_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let Some(at) = url.rfind('@').filter(|&at| at >= start) else {
        return url.to_owned();
    };
    let userinfo = &url[start..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:[redacted]{}",
            &url[..start],
            &userinfo[..colon],
            &url[at..]
        ),
        None => url.to_owned(),
    }
}

fn read_file(var: &str, path: &str) -> Result<Vec<u8>, ConfigError> {
    let bytes = std::fs::read(path.trim())
        .map_err(|e| ConfigError::invalid(var, format!("cannot read {path}: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ConfigError::invalid(var, format!("{path} is empty")));
    }
    Ok(bytes)
}

/// A PEM file holding at least one certificate.
fn read_certs(var: &str, path: &str) -> Result<Vec<u8>, ConfigError> {
    let pem = read_file(var, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::invalid(var, format!("{path}: not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(ConfigError::invalid(
            var,
            format!("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ));
    }
    Ok(pem)
}

/// A PEM private key (PKCS#8, PKCS#1 or SEC1). The error never quotes it.
fn read_key(var: &str, path: &str) -> Result<Secret, ConfigError> {
    let pem = read_file(var, path)?;
    if PrivateKeyDer::from_pem_slice(&pem).is_err() {
        return Err(ConfigError::invalid(
            var,
            format!("{path} holds no PEM private key"),
        ));
    }
    let text = String::from_utf8(pem)
        .map_err(|_| ConfigError::invalid(var, format!("{path} is not a text PEM file")))?;
    Ok(Secret::new(text))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    fn settings(config: &RedisConfig) -> redis::RedisConnectionInfo {
        config
            .client()
            .unwrap()
            .get_connection_info()
            .redis_settings()
            .clone()
    }

    #[test]
    fn defaults_to_a_local_plain_redis() {
        let c = RedisConfig::from_env(&env(&[])).unwrap();
        assert!(!c.is_tls());
        assert_eq!(c.redacted_url(), DEFAULT_REDIS_URL);
        let s = settings(&c);
        assert_eq!((s.username(), s.password(), s.db()), (None, None, 0));
    }

    #[test]
    fn url_userinfo_and_db_are_honoured() {
        let c = RedisConfig::from_env(&env(&[(
            "REDIS_URL",
            "redis://app:s3cr%40t@cache.internal:6380/2",
        )]))
        .unwrap();
        let s = settings(&c);
        assert_eq!(s.username(), Some("app"));
        assert_eq!(s.password(), Some("s3cr@t"));
        assert_eq!(s.db(), 2);
    }

    #[test]
    fn password_and_user_from_variables() {
        let c = RedisConfig::from_env(&env(&[
            ("REDIS_URL", "redis://other@cache:6379"),
            ("REDIS_USERNAME", "app"),
            ("REDIS_PASSWORD", "pw"),
        ]))
        .unwrap();
        let s = settings(&c);
        assert_eq!((s.username(), s.password()), (Some("app"), Some("pw")));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let c = RedisConfig::from_env(&env(&[("REDIS_PASSWORD_FILE", file.to_str().unwrap())]))
            .unwrap();
        assert_eq!(settings(&c).password(), Some("from-file"));
    }

    #[test]
    fn a_password_in_two_places_is_refused_naming_both() {
        let e = RedisConfig::from_env(&env(&[
            ("REDIS_URL", "redis://:urlpw@cache:6379"),
            ("REDIS_PASSWORD", "varpw"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("REDIS_URL") && e.contains("REDIS_PASSWORD"),
            "{e}"
        );
        assert!(!e.contains("urlpw") && !e.contains("varpw"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "filepw").unwrap();
        let e = RedisConfig::from_env(&env(&[
            ("REDIS_URL", "redis://:urlpw@cache:6379"),
            ("REDIS_PASSWORD_FILE", file.to_str().unwrap()),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("REDIS_URL") && e.contains("REDIS_PASSWORD_FILE"),
            "{e}"
        );
    }

    #[test]
    fn a_user_without_password_is_refused() {
        let e = RedisConfig::from_env(&env(&[("REDIS_USERNAME", "app")])).unwrap_err();
        assert!(
            e.to_string().starts_with("REDIS_USERNAME is invalid"),
            "{e}"
        );
        let e = RedisConfig::from_env(&env(&[("REDIS_URL", "redis://app@cache")])).unwrap_err();
        assert!(e.to_string().starts_with("REDIS_URL is invalid"), "{e}");
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_the_password() {
        for url in [
            "http://u:hunter2@cache:6379",
            "redis://u:hunter2@cache:6379/notadb",
            "rediss://u:hunter2@cache:6379#insecure",
            "cache:6379",
        ] {
            let e = RedisConfig::from_env(&env(&[("REDIS_URL", url)]))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("REDIS_URL is invalid"), "{url}: {e}");
            assert!(!e.contains("hunter2"), "{url}: {e}");
        }
    }

    #[test]
    fn tls_files_need_a_rediss_url() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        let e = RedisConfig::from_env(&env(&[("REDIS_TLS_CA_FILE", ca.to_str().unwrap())]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("REDIS_TLS_CA_FILE is invalid") && e.contains("rediss://"),
            "{e}"
        );

        let c = RedisConfig::from_env(&env(&[
            ("REDIS_URL", "rediss://cache:6380"),
            ("REDIS_TLS_CA_FILE", ca.to_str().unwrap()),
        ]))
        .unwrap();
        assert!(c.is_tls());
    }

    #[test]
    fn tls_files_are_checked_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert_file = dir.path().join("cert.pem");
        let key_file = dir.path().join("key.pem");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&cert_file, cert.cert.pem()).unwrap();
        std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
        std::fs::write(&junk, "not a certificate").unwrap();
        let (cert_path, key_path, junk_path) = (
            cert_file.to_str().unwrap(),
            key_file.to_str().unwrap(),
            junk.to_str().unwrap(),
        );
        let url = ("REDIS_URL", "rediss://cache:6380");

        let c = RedisConfig::from_env(&env(&[
            url,
            ("REDIS_TLS_CERT_FILE", cert_path),
            ("REDIS_TLS_KEY_FILE", key_path),
        ]))
        .unwrap();
        assert!(format!("{c:?}").contains("tls_client_cert: true"));

        let e = RedisConfig::from_env(&env(&[url, ("REDIS_TLS_CERT_FILE", cert_path)]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("REDIS_TLS_CERT_FILE") && e.contains("REDIS_TLS_KEY_FILE"),
            "{e}"
        );
        let e = RedisConfig::from_env(&env(&[url, ("REDIS_TLS_CA_FILE", junk_path)]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("REDIS_TLS_CA_FILE is invalid"), "{e}");
        let e = RedisConfig::from_env(&env(&[
            url,
            ("REDIS_TLS_CERT_FILE", cert_path),
            ("REDIS_TLS_KEY_FILE", cert_path),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("REDIS_TLS_KEY_FILE is invalid"), "{e}");
        let e = RedisConfig::from_env(&env(&[url, ("REDIS_TLS_CA_FILE", "/nonexistent/ca.pem")]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("REDIS_TLS_CA_FILE is invalid"), "{e}");
    }

    #[test]
    fn debug_redacts_every_password() {
        let c = RedisConfig::from_env(&env(&[
            ("REDIS_URL", "rediss://app:hunter2@cache:6380/1"),
            ("REDIS_USERNAME", "ops"),
        ]))
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("rediss://app:[redacted]@cache:6380/1"),
            "{shown}"
        );

        let c = RedisConfig::from_env(&env(&[
            ("REDIS_URL", "redis://cache"),
            ("REDIS_PASSWORD", "hunter3"),
        ]))
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter3") && shown.contains("redacted"),
            "{shown}"
        );

        let c = RedisConfig::from("redis://:p@ss:w/rd@cache:6379");
        let shown = format!("{c:?}");
        assert!(!shown.contains("ss:w") && !shown.contains("rd@"), "{shown}");
        assert_eq!(c.redacted_url(), "redis://:[redacted]@cache:6379");
    }

    #[test]
    fn from_url_keeps_the_url_and_reports_errors_late() {
        let c = RedisConfig::from("redis://127.0.0.1:7000");
        assert_eq!(c.redacted_url(), "redis://127.0.0.1:7000");
        assert!(RedisConfig::from("nope").client().is_err());
        let c = RedisConfig::from("redis://cache").with_password(Secret::new("x"));
        assert_eq!(settings(&c).password(), Some("x"));
    }
}
