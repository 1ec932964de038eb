//! Passwords, ACL users and TLS against real private redis-servers: every
//! case goes through `RedisConfig::from_env` and a SET/GET round trip on a
//! `RedisStore`, exactly as a service does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use zengate_runtime::redis_store::{RedisStore, StoreError};
use zengate_runtime::{Env, RedisConfig};
use zengate_testkit::{RedisServer, RedisTls};

const TIMEOUT: Duration = Duration::from_secs(2);

fn store(pairs: &[(&str, &str)]) -> RedisStore {
    let config = RedisConfig::from_env(&Env::from_pairs(pairs.iter().copied())).unwrap();
    RedisStore::new(&config, TIMEOUT).unwrap()
}

/// SET then GET a fresh value; the GET must return it.
async fn round_trip(store: &RedisStore) -> Result<(), StoreError> {
    let value = format!("v-{}", std::process::id());
    let () = store
        .query(redis::cmd("SET").arg("zg:auth-test").arg(&value))
        .await?;
    let got: String = store.query(redis::cmd("GET").arg("zg:auth-test")).await?;
    assert_eq!(got, value);
    Ok(())
}

async fn refused(store: &RedisStore, secrets: &[&str]) -> String {
    let e = round_trip(store)
        .await
        .expect_err("the server should refuse this client")
        .to_string();
    for s in secrets {
        assert!(!e.contains(s), "error quotes a secret: {e}");
    }
    e
}

#[tokio::test]
async fn requirepass_with_the_password_in_the_url() {
    let redis = RedisServer::start_with_args(&["--requirepass", "url-pass"]).await;
    let url = format!("redis://:url-pass@127.0.0.1:{}", redis.port());
    round_trip(&store(&[("REDIS_URL", &url)])).await.unwrap();

    // Without a password the server answers NOAUTH.
    let e = refused(&store(&[("REDIS_URL", &redis.url())]), &[]).await;
    assert!(e.contains("NOAUTH") || e.contains("Authentication"), "{e}");
}

#[tokio::test]
async fn requirepass_with_redis_password() {
    let redis = RedisServer::start_with_args(&["--requirepass", "var-pass"]).await;
    round_trip(&store(&[
        ("REDIS_URL", &redis.url()),
        ("REDIS_PASSWORD", "var-pass"),
    ]))
    .await
    .unwrap();
}

#[tokio::test]
async fn requirepass_with_redis_password_file() {
    let redis = RedisServer::start_with_args(&["--requirepass", "file-pass"]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis-password");
    std::fs::write(&file, "file-pass\n").unwrap();
    round_trip(&store(&[
        ("REDIS_URL", &redis.url()),
        ("REDIS_PASSWORD_FILE", file.to_str().unwrap()),
    ]))
    .await
    .unwrap();
}

#[tokio::test]
async fn a_wrong_password_is_refused_without_quoting_it() {
    let redis = RedisServer::start_with_args(&["--requirepass", "right-pass"]).await;
    let e = refused(
        &store(&[
            ("REDIS_URL", &redis.url()),
            ("REDIS_PASSWORD", "wrong-pass-123"),
        ]),
        &["wrong-pass-123", "right-pass"],
    )
    .await;
    assert!(e.to_lowercase().contains("authentication failed"), "{e}");

    let url = format!("redis://:wrong-pass-456@127.0.0.1:{}", redis.port());
    refused(&store(&[("REDIS_URL", &url)]), &["wrong-pass-456"]).await;
}

#[tokio::test]
async fn an_acl_user_with_redis_username() {
    // Only `app` may log in: the default user is switched off. (redis-server
    // takes each ACL rule as its own argument.)
    let redis = RedisServer::start_with_args(&[
        "--user",
        "default",
        "off",
        "--user",
        "app",
        "on",
        ">app-pass",
        "~zg:*",
        "+@all",
    ])
    .await;
    round_trip(&store(&[
        ("REDIS_URL", &redis.url()),
        ("REDIS_USERNAME", "app"),
        ("REDIS_PASSWORD", "app-pass"),
    ]))
    .await
    .unwrap();

    // The same user and password in the URL.
    let url = format!("redis://app:app-pass@127.0.0.1:{}/0", redis.port());
    round_trip(&store(&[("REDIS_URL", &url)])).await.unwrap();

    // The right password for the wrong user (the default one) is refused.
    refused(
        &store(&[("REDIS_URL", &redis.url()), ("REDIS_PASSWORD", "app-pass")]),
        &["app-pass"],
    )
    .await;
}

/// A private CA, a server certificate for 127.0.0.1 and a client
/// certificate, written as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "zengate test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        write(dir.path(), "ca.pem", &ca_cert.pem());

        for (name, sans, usage) in [
            (
                "server",
                vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            (
                "client",
                vec!["zengate-client".to_owned()],
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
        ] {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &issuer).unwrap();
            write(dir.path(), &format!("{name}.pem"), &cert.pem());
            write(dir.path(), &format!("{name}.key"), &key.serialize_pem());
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn file(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }

    fn server(&self, auth_clients: bool) -> RedisTls {
        RedisTls {
            cert_file: self.path("server.pem"),
            key_file: self.path("server.key"),
            ca_file: self.path("ca.pem"),
            auth_clients,
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[tokio::test]
async fn rediss_with_a_private_ca_and_a_password() {
    let pki = Pki::new();
    let redis = RedisServer::start_tls(pki.server(false), &["--requirepass", "tls-pass"]).await;
    assert!(redis.url().starts_with("rediss://"));
    round_trip(&store(&[
        ("REDIS_URL", &redis.url()),
        ("REDIS_TLS_CA_FILE", &pki.file("ca.pem")),
        ("REDIS_PASSWORD", "tls-pass"),
    ]))
    .await
    .unwrap();
}

#[tokio::test]
async fn rediss_without_the_ca_is_refused_as_untrusted() {
    let pki = Pki::new();
    let redis = RedisServer::start_tls(pki.server(false), &[]).await;
    let e = refused(&store(&[("REDIS_URL", &redis.url())]), &[]).await;
    assert!(
        e.contains("UnknownIssuer"),
        "expected an untrusted certificate: {e}"
    );

    // Plain text to a TLS port does not get through either.
    let plain = format!("redis://127.0.0.1:{}", redis.port());
    refused(&store(&[("REDIS_URL", &plain)]), &[]).await;
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = Pki::new();
    let redis = RedisServer::start_tls(pki.server(true), &[]).await;
    round_trip(&store(&[
        ("REDIS_URL", &redis.url()),
        ("REDIS_TLS_CA_FILE", &pki.file("ca.pem")),
        ("REDIS_TLS_CERT_FILE", &pki.file("client.pem")),
        ("REDIS_TLS_KEY_FILE", &pki.file("client.key")),
    ]))
    .await
    .unwrap();

    let e = refused(
        &store(&[
            ("REDIS_URL", &redis.url()),
            ("REDIS_TLS_CA_FILE", &pki.file("ca.pem")),
        ]),
        &[],
    )
    .await;
    assert!(e.contains("CertificateRequired"), "{e}");
}

#[tokio::test]
async fn a_restarted_password_server_is_reached_again() {
    let mut redis = RedisServer::start_with_args(&["--requirepass", "again"]).await;
    let store = store(&[("REDIS_URL", &redis.url()), ("REDIS_PASSWORD", "again")]);
    round_trip(&store).await.unwrap();
    redis.restart().await;
    // The first command after the restart may meet the dead connection; the
    // manager reconnects (and authenticates again) in the background.
    zengate_testkit::eventually(
        "round trip after restart",
        Duration::from_secs(10),
        || async { round_trip(&store).await.ok() },
    )
    .await;
}
