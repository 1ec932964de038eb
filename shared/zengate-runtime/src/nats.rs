//! How a service reaches NATS: seed URLs, one authentication method and TLS,
//! read from the environment (see the configuration reference in README).
//!
//! async-nats ignores credentials written into a URL, so user info is taken
//! out of every seed URL here and applied as explicit options; the URLs kept
//! (and everything printed) never carry a secret.

use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;
use url::Url;
use zengate_core::Secret;

use crate::config::{ConfigError, Env};

/// Used when `NATS_URL` is unset.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// How many servers of a JetStream cluster keep every stream and bucket
/// zengate creates (1 to 5; 3 on a three-node cluster).
pub const STREAM_REPLICAS_VAR: &str = "ZENGATE_STREAM_REPLICAS";

/// One way of proving who the client is. At most one is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsAuth {
    None,
    UserPassword {
        user: String,
        password: Secret,
    },
    Token(Secret),
    /// A user nkey seed (`SU...`); the server knows the public key.
    NkeySeed(Secret),
    /// A `.creds` file: user JWT plus nkey seed (operator/accounts mode).
    CredsFile(PathBuf),
}

impl NatsAuth {
    /// The method's name for logs (never its value).
    pub fn kind(&self) -> &'static str {
        match self {
            NatsAuth::None => "none",
            NatsAuth::UserPassword { .. } => "user/password",
            NatsAuth::Token(_) => "token",
            NatsAuth::NkeySeed(_) => "nkey",
            NatsAuth::CredsFile(_) => "creds file",
        }
    }
}

/// TLS towards the server. `required` is also set by `tls://` URLs and by any
/// TLS file, so a certificate is never configured and then silently unused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsTls {
    pub required: bool,
    /// Extra root CA (PEM) trusted besides the built-in web roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// Everything needed to connect. `Debug` shows URLs without user info and
/// secrets as `[redacted]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// Seed URLs without user info (`nats://host:port` or `tls://host:port`).
    pub servers: Vec<String>,
    pub auth: NatsAuth,
    pub tls: NatsTls,
    /// Replicas of the streams and buckets created through this connection
    /// (`ZENGATE_STREAM_REPLICAS`, default 1). Consumers inherit their
    /// stream's.
    pub stream_replicas: usize,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self::from(DEFAULT_NATS_URL)
    }
}

/// A plain URL (or comma-separated list), for tests and embedded stacks.
/// User info in the URL is honoured like `NATS_URL`; a URL that cannot be
/// parsed is kept as given and fails at connect time.
impl From<&str> for NatsConfig {
    fn from(url: &str) -> Self {
        Self::from_env(&Env::from_pairs([("NATS_URL", url)])).unwrap_or_else(|_| Self {
            servers: vec![strip_userinfo(url)],
            auth: NatsAuth::None,
            tls: NatsTls::default(),
            stream_replicas: 1,
        })
    }
}

impl From<String> for NatsConfig {
    fn from(url: String) -> Self {
        Self::from(url.as_str())
    }
}

/// Credentials found in the seed URLs.
#[derive(PartialEq, Eq)]
enum UrlAuth {
    UserPassword(String, String),
    Token(String),
}

impl NatsConfig {
    /// Reads `NATS_*` (see the module docs). Refuses more than one
    /// authentication method and TLS/creds files that do not exist.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let raw = env.string_or("NATS_URL", DEFAULT_NATS_URL);
        let mut servers = Vec::new();
        let mut url_auth: Option<UrlAuth> = None;
        let mut tls_scheme = false;
        for item in raw.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(ConfigError::invalid(
                    "NATS_URL",
                    "a comma-separated list must not contain empty entries",
                ));
            }
            let (url, auth) = parse_seed(item)?;
            if let Some(auth) = auth {
                match &url_auth {
                    Some(seen) if *seen != auth => {
                        return Err(ConfigError::invalid(
                            "NATS_URL",
                            "seed URLs carry different credentials",
                        ));
                    }
                    _ => url_auth = Some(auth),
                }
            }
            tls_scheme |= url.scheme() == "tls";
            servers.push(url.to_string());
        }

        // Every method that was set, by the variables that set it.
        let mut methods: Vec<(&str, NatsAuth)> = Vec::new();
        match url_auth {
            Some(UrlAuth::UserPassword(user, password)) => methods.push((
                "NATS_URL (user info)",
                NatsAuth::UserPassword {
                    user,
                    password: Secret::new(password),
                },
            )),
            Some(UrlAuth::Token(token)) => methods.push((
                "NATS_URL (token user info)",
                NatsAuth::Token(Secret::new(token)),
            )),
            None => {}
        }
        match (env.get("NATS_USER"), env.secret_opt("NATS_PASSWORD")?) {
            (Some(user), Some(password)) => methods.push((
                "NATS_USER/NATS_PASSWORD",
                NatsAuth::UserPassword {
                    user: user.trim().to_owned(),
                    password,
                },
            )),
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    var: "NATS_PASSWORD".to_owned(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    var: "NATS_USER".to_owned(),
                });
            }
            (None, None) => {}
        }
        if let Some(token) = env.secret_opt("NATS_TOKEN")? {
            methods.push(("NATS_TOKEN", NatsAuth::Token(token)));
        }
        if let Some(seed) = env.secret_opt("NATS_NKEY_SEED")? {
            let trimmed = seed.expose().trim();
            if !trimmed.starts_with("SU") {
                return Err(ConfigError::invalid(
                    "NATS_NKEY_SEED",
                    "expected a user nkey seed (starting with SU)",
                ));
            }
            methods.push(("NATS_NKEY_SEED", NatsAuth::NkeySeed(Secret::new(trimmed))));
        }
        if let Some(path) = existing_file(env, "NATS_CREDS_FILE")? {
            methods.push(("NATS_CREDS_FILE", NatsAuth::CredsFile(path)));
        }
        if methods.len() > 1 {
            let names: Vec<&str> = methods.iter().map(|(n, _)| *n).collect();
            return Err(ConfigError::invalid(
                methods[1].0,
                format!(
                    "set only one NATS authentication method, found {}",
                    names.join(", ")
                ),
            ));
        }
        let auth = methods.pop().map_or(NatsAuth::None, |(_, a)| a);

        let ca_file = existing_file(env, "NATS_TLS_CA_FILE")?;
        let client_cert = match (
            existing_file(env, "NATS_TLS_CERT_FILE")?,
            existing_file(env, "NATS_TLS_KEY_FILE")?,
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    var: "NATS_TLS_KEY_FILE".to_owned(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    var: "NATS_TLS_CERT_FILE".to_owned(),
                });
            }
            (None, None) => None,
        };
        let required = env.bool_or("NATS_TLS_REQUIRED", false)?
            || tls_scheme
            || ca_file.is_some()
            || client_cert.is_some();
        let stream_replicas = stream_replicas(env, STREAM_REPLICAS_VAR, 1)?;
        Ok(Self {
            servers,
            auth,
            tls: NatsTls {
                required,
                ca_file,
                client_cert,
            },
            stream_replicas,
        })
    }

    /// The seed URLs for messages: `nats://a:4222, nats://b:4222`.
    pub fn display_servers(&self) -> String {
        self.servers
            .iter()
            .map(|s| strip_userinfo(s))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A JetStream replica count read from `var` (JetStream allows 1 to 5).
pub fn stream_replicas(env: &Env, var: &str, default: usize) -> Result<usize, ConfigError> {
    let n: usize = env.parse_or(var, default)?;
    if (1..=5).contains(&n) {
        Ok(n)
    } else {
        Err(ConfigError::invalid(var, "must be between 1 and 5"))
    }
}

/// Parses one seed URL (scheme optional, `nats://` assumed) and splits off
/// its user info. Errors never repeat the URL, which may hold a password.
fn parse_seed(item: &str) -> Result<(Url, Option<UrlAuth>), ConfigError> {
    let with_scheme = if item.contains("://") {
        item.to_owned()
    } else {
        format!("nats://{item}")
    };
    let mut url = Url::parse(&with_scheme)
        .map_err(|e| ConfigError::invalid("NATS_URL", format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "nats" | "tls") {
        return Err(ConfigError::invalid(
            "NATS_URL",
            format!(
                "scheme {} is not supported (use nats:// or tls://)",
                url.scheme()
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid("NATS_URL", "a seed URL has no host"));
    }
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let user = decode(url.username());
    let password = url.password().map(decode);
    let auth = match (user.is_empty(), password) {
        (true, None) => None,
        (false, None) => Some(UrlAuth::Token(user)),
        (false, Some(p)) => Some(UrlAuth::UserPassword(user, p)),
        (true, Some(_)) => {
            return Err(ConfigError::invalid(
                "NATS_URL",
                "a seed URL has a password but no user",
            ));
        }
    };
    // Cannot fail for nats:// and tls:// URLs with a host.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((url, auth))
}

/// The path in `var`, which must name an existing file.
fn existing_file(env: &Env, var: &str) -> Result<Option<PathBuf>, ConfigError> {
    let Some(path) = env.get(var) else {
        return Ok(None);
    };
    let path = PathBuf::from(path.trim());
    if !Path::new(&path).is_file() {
        return Err(ConfigError::invalid(
            var,
            format!("{} does not exist or is not a file", path.display()),
        ));
    }
    Ok(Some(path))
}

/// `url` with any user info replaced by nothing, for messages. Works on
/// strings that do not parse as URLs too (cuts at the last `@` before the
/// host part).
pub fn strip_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}{host}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)))
    }

    #[test]
    fn stream_replicas_default_and_range() {
        assert_eq!(NatsConfig::from_env(&env(&[])).unwrap().stream_replicas, 1);
        let c = NatsConfig::from_env(&env(&[(STREAM_REPLICAS_VAR, "3")])).unwrap();
        assert_eq!(c.stream_replicas, 3);
        for bad in ["0", "6", "three"] {
            let e = NatsConfig::from_env(&env(&[(STREAM_REPLICAS_VAR, bad)])).unwrap_err();
            assert!(e.to_string().starts_with(STREAM_REPLICAS_VAR), "{e}");
        }
    }

    fn file(name: &str, content: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let s = path.to_string_lossy().into_owned();
        (dir, s)
    }

    #[test]
    fn defaults_and_seed_lists() {
        let c = NatsConfig::from_env(&env(&[])).unwrap();
        assert_eq!(c.servers, ["nats://127.0.0.1:4222"]);
        assert_eq!(c.auth, NatsAuth::None);
        assert!(!c.tls.required);

        let c = NatsConfig::from_env(&env(&[(
            "NATS_URL",
            "nats://a:4222, tls://b:4223 ,127.0.0.1:4224",
        )]))
        .unwrap();
        assert_eq!(
            c.servers,
            ["nats://a:4222", "tls://b:4223", "nats://127.0.0.1:4224"]
        );
        assert!(c.tls.required, "tls:// implies TLS");

        for bad in ["nats://a:1,,nats://b:2", "http://a:1", "nats://"] {
            let e = NatsConfig::from_env(&env(&[("NATS_URL", bad)])).unwrap_err();
            assert!(
                e.to_string().starts_with("NATS_URL is invalid"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn userinfo_is_taken_out_of_the_urls() {
        let c = NatsConfig::from_env(&env(&[(
            "NATS_URL",
            "nats://svc:p%40ss@a:4222,nats://b:4222",
        )]))
        .unwrap();
        assert_eq!(c.servers, ["nats://a:4222", "nats://b:4222"]);
        assert_eq!(
            c.auth,
            NatsAuth::UserPassword {
                user: "svc".into(),
                password: Secret::new("p@ss")
            }
        );
        let c = NatsConfig::from("nats://s3cr3t-token@a:4222");
        assert_eq!(c.auth, NatsAuth::Token(Secret::new("s3cr3t-token")));
        assert_eq!(c.servers, ["nats://a:4222"]);

        let e = NatsConfig::from_env(&env(&[(
            "NATS_URL",
            "nats://u:one@a:4222,nats://u:two@b:4222",
        )]))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("different credentials") && !e.contains("one"),
            "{e}"
        );
    }

    #[test]
    fn only_one_authentication_method() {
        let (_d, creds) = file("u.creds", "x");
        let cases: &[&[(&str, &str)]] = &[
            &[
                ("NATS_USER", "u"),
                ("NATS_PASSWORD", "pw1"),
                ("NATS_TOKEN", "tok1"),
            ],
            &[("NATS_URL", "nats://u:pw1@h:1"), ("NATS_TOKEN", "tok1")],
            &[
                ("NATS_URL", "nats://tok1@h:1"),
                ("NATS_USER", "u"),
                ("NATS_PASSWORD", "pw1"),
            ],
            &[("NATS_TOKEN", "tok1"), ("NATS_NKEY_SEED", "SUAAAA")],
            &[("NATS_NKEY_SEED", "SUAAAA"), ("NATS_CREDS_FILE", &creds)],
        ];
        for case in cases {
            let e = NatsConfig::from_env(&env(case)).unwrap_err().to_string();
            assert!(e.contains("only one NATS authentication method"), "{e}");
            for (var, value) in *case {
                if *var != "NATS_URL" {
                    assert!(e.contains(var), "{e} should name {var}");
                }
                if *var != "NATS_CREDS_FILE" {
                    assert!(!e.contains(value) || value.len() < 3, "{e} leaks {value}");
                }
            }
            assert!(!e.contains("pw1") && !e.contains("tok1") && !e.contains("SUAAAA"));
        }
        let e = NatsConfig::from_env(&env(&[("NATS_USER", "u")])).unwrap_err();
        assert_eq!(e.to_string(), "NATS_PASSWORD is required but not set");
        let e = NatsConfig::from_env(&env(&[("NATS_PASSWORD", "pw")])).unwrap_err();
        assert_eq!(e.to_string(), "NATS_USER is required but not set");
        let e = NatsConfig::from_env(&env(&[("NATS_NKEY_SEED", "UABCDEF")])).unwrap_err();
        assert!(
            e.to_string().starts_with("NATS_NKEY_SEED is invalid"),
            "{e}"
        );
    }

    #[test]
    fn secrets_from_files_and_missing_files() {
        let (_d, pw) = file("pw", "from-file\n");
        let c =
            NatsConfig::from_env(&env(&[("NATS_USER", "u"), ("NATS_PASSWORD_FILE", &pw)])).unwrap();
        assert_eq!(
            c.auth,
            NatsAuth::UserPassword {
                user: "u".into(),
                password: Secret::new("from-file")
            }
        );
        let c = NatsConfig::from_env(&env(&[("NATS_TOKEN_FILE", &pw)])).unwrap();
        assert_eq!(c.auth, NatsAuth::Token(Secret::new("from-file")));

        for var in [
            "NATS_CREDS_FILE",
            "NATS_TLS_CA_FILE",
            "NATS_TLS_CERT_FILE",
            "NATS_TLS_KEY_FILE",
            "NATS_TOKEN_FILE",
            "NATS_NKEY_SEED_FILE",
            "NATS_PASSWORD_FILE",
        ] {
            let mut pairs = vec![(var, "/nonexistent/zg/file")];
            if var == "NATS_PASSWORD_FILE" {
                pairs.push(("NATS_USER", "u"));
            }
            let e = NatsConfig::from_env(&env(&pairs)).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{var} is invalid")), "{var}: {e}");
        }
        let (_d2, cert) = file("c.pem", "x");
        let e = NatsConfig::from_env(&env(&[("NATS_TLS_CERT_FILE", &cert)])).unwrap_err();
        assert_eq!(e.to_string(), "NATS_TLS_KEY_FILE is required but not set");
        let c = NatsConfig::from_env(&env(&[("NATS_TLS_CA_FILE", &cert)])).unwrap();
        assert!(c.tls.required, "a CA file implies TLS");
        let c = NatsConfig::from_env(&env(&[("NATS_TLS_REQUIRED", "true")])).unwrap();
        assert!(c.tls.required);
    }

    #[test]
    fn debug_redacts_every_secret() {
        let (_d, creds) = file("u.creds", "x");
        let configs = [
            NatsConfig::from("nats://svc:hunter2-pass@a:4222"),
            NatsConfig::from("nats://hunter2-token@a:4222"),
            NatsConfig::from_env(&env(&[
                ("NATS_USER", "svc"),
                ("NATS_PASSWORD", "hunter2-pass"),
            ]))
            .unwrap(),
            NatsConfig::from_env(&env(&[("NATS_NKEY_SEED", "SUhunter2-seed")])).unwrap(),
            NatsConfig::from_env(&env(&[("NATS_CREDS_FILE", &creds)])).unwrap(),
        ];
        for c in &configs {
            let text = format!("{c:?} {}", c.display_servers());
            assert!(!text.contains("hunter2"), "{text}");
        }
        assert!(format!("{:?}", configs[2]).contains("svc"));
    }

    #[test]
    fn strip_userinfo_handles_odd_input() {
        assert_eq!(strip_userinfo("nats://u:p@h:1"), "nats://h:1");
        assert_eq!(strip_userinfo("nats://u:p@x@h:1/a?b"), "nats://h:1/a?b");
        assert_eq!(strip_userinfo("tok@h:1"), "h:1");
        assert_eq!(strip_userinfo("nats://h:1"), "nats://h:1");
    }
}
