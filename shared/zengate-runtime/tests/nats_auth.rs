//! Every way of authenticating to NATS, each against a real private
//! nats-server configured for it: the right credentials give a working
//! connection (publish/subscribe round trip), wrong or missing ones are
//! refused with an error that never contains the secret tried.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt as _;
use zengate_runtime::bus::{self, BusError};
use zengate_runtime::{Env, NatsConfig};
use zengate_testkit::{NatsServer, free_port};

fn env(pairs: &[(&str, &str)]) -> NatsConfig {
    NatsConfig::from_env(&Env::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)))).unwrap()
}

/// Publishes on a fresh subject and receives it back through the server.
async fn round_trip(client: &async_nats::Client) {
    let subject = format!("zg.check.{}", free_port());
    let mut sub = client.subscribe(subject.clone()).await.unwrap();
    client.flush().await.unwrap();
    client.publish(subject, "ping".into()).await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("round trip timed out")
        .expect("subscription ended");
    assert_eq!(msg.payload.as_ref(), b"ping");
}

/// Connects once and expects success plus a working round trip.
async fn works(config: &NatsConfig) {
    let client = bus::connect_once(config, "zg-test")
        .await
        .unwrap_or_else(|e| panic!("expected a connection with {config:?}: {e}"));
    round_trip(&client).await;
}

/// Connects once and expects a refusal whose text (Display, Debug and the
/// whole source chain) does not contain any of `secrets`.
async fn refused(config: &NatsConfig, secrets: &[&str]) -> BusError {
    let err = match bus::connect_once(config, "zg-test").await {
        Ok(_) => panic!("expected a refusal with {config:?}"),
        Err(e) => e,
    };
    let mut text = format!("{err} {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        text.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    for secret in secrets {
        assert!(!text.contains(secret), "error leaks a secret: {text}");
    }
    err
}

fn is_auth_refusal(err: &BusError) -> bool {
    matches!(err, BusError::Connect { source, .. }
        if source.kind() == async_nats::ConnectErrorKind::AuthorizationViolation
            || source.kind() == async_nats::ConnectErrorKind::Authentication)
}

#[tokio::test]
async fn user_and_password_from_variables() {
    let server = NatsServer::start_with_config(
        r#"authorization { users = [ { user: svc, password: "right-pw-8d1e" } ] }"#,
    )
    .await;
    let url = server.url();
    works(&env(&[
        ("NATS_URL", &url),
        ("NATS_USER", "svc"),
        ("NATS_PASSWORD", "right-pw-8d1e"),
    ]))
    .await;

    let dir = tempfile::tempdir().unwrap();
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, "right-pw-8d1e\n").unwrap();
    works(&env(&[
        ("NATS_URL", &url),
        ("NATS_USER", "svc"),
        ("NATS_PASSWORD_FILE", pw_file.to_str().unwrap()),
    ]))
    .await;

    let wrong = env(&[
        ("NATS_URL", &url),
        ("NATS_USER", "svc"),
        ("NATS_PASSWORD", "wrong-pw-77c2"),
    ]);
    assert!(is_auth_refusal(&refused(&wrong, &["wrong-pw-77c2"]).await));
    assert!(is_auth_refusal(
        &refused(&env(&[("NATS_URL", &url)]), &[]).await
    ));
}

#[tokio::test]
async fn user_and_password_from_url_userinfo() {
    let server = NatsServer::start_with_config(
        r#"authorization { users = [ { user: svc, password: "url-pw-3f9a" } ] }"#,
    )
    .await;
    let port = server.port();
    let right = NatsConfig::from(format!("nats://svc:url-pw-3f9a@127.0.0.1:{port}"));
    assert_eq!(right.servers, [format!("nats://127.0.0.1:{port}")]);
    works(&right).await;
    let wrong = NatsConfig::from(format!("nats://svc:bad-url-pw-51@127.0.0.1:{port}"));
    let err = refused(&wrong, &["bad-url-pw-51"]).await;
    assert!(is_auth_refusal(&err));
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "names the server: {err}"
    );
}

#[tokio::test]
async fn token_from_variable_and_url() {
    let server =
        NatsServer::start_with_config(r#"authorization { token: "tok-right-a41c" }"#).await;
    let url = server.url();
    works(&env(&[
        ("NATS_URL", &url),
        ("NATS_TOKEN", "tok-right-a41c"),
    ]))
    .await;
    works(&NatsConfig::from(format!(
        "nats://tok-right-a41c@127.0.0.1:{}",
        server.port()
    )))
    .await;
    let wrong = env(&[("NATS_URL", &url), ("NATS_TOKEN", "tok-wrong-9e0b")]);
    assert!(is_auth_refusal(&refused(&wrong, &["tok-wrong-9e0b"]).await));
    assert!(is_auth_refusal(
        &refused(&env(&[("NATS_URL", &url)]), &[]).await
    ));
}

#[tokio::test]
async fn nkey_seed() {
    let user = nkeys::KeyPair::new_user();
    let seed = user.seed().unwrap();
    let server = NatsServer::start_with_config(&format!(
        "authorization {{ users = [ {{ nkey: {} }} ] }}",
        user.public_key()
    ))
    .await;
    let url = server.url();
    works(&env(&[("NATS_URL", &url), ("NATS_NKEY_SEED", &seed)])).await;

    let dir = tempfile::tempdir().unwrap();
    let seed_file = dir.path().join("seed");
    std::fs::write(&seed_file, format!("{seed}\n")).unwrap();
    works(&env(&[
        ("NATS_URL", &url),
        ("NATS_NKEY_SEED_FILE", seed_file.to_str().unwrap()),
    ]))
    .await;

    let stranger = nkeys::KeyPair::new_user().seed().unwrap();
    let wrong = env(&[("NATS_URL", &url), ("NATS_NKEY_SEED", &stranger)]);
    assert!(is_auth_refusal(&refused(&wrong, &[&stranger, &seed]).await));
    assert!(is_auth_refusal(
        &refused(&env(&[("NATS_URL", &url)]), &[]).await
    ));
}

// ---- operator mode (.creds) -------------------------------------------------

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An ed25519-nkey JWT as nats-server expects: base64url(header) "."
/// base64url(claims) "." base64url(signature over the first two parts).
fn sign_jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": format!("ZGTEST{}{}", now(), free_port()),
        "iat": now(),
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let signing_input = format!("{header}.{claims}");
    let signature = URL_SAFE_NO_PAD.encode(issuer.sign(signing_input.as_bytes()).unwrap());
    format!("{signing_input}.{signature}")
}

fn account_jwt(operator: &nkeys::KeyPair, account: &nkeys::KeyPair, name: &str) -> String {
    sign_jwt(
        operator,
        &account.public_key(),
        name,
        serde_json::json!({
            "limits": {
                "subs": -1, "data": -1, "payload": -1, "imports": -1,
                "exports": -1, "wildcards": true, "conn": -1, "leaf": -1
            },
            "type": "account",
            "version": 2
        }),
    )
}

fn user_jwt(account: &nkeys::KeyPair, user: &nkeys::KeyPair) -> String {
    sign_jwt(
        account,
        &user.public_key(),
        "svc",
        serde_json::json!({
            "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
            "type": "user", "version": 2
        }),
    )
}

/// The `.creds` layout `nsc generate creds` writes.
fn creds_text(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    )
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[tokio::test]
async fn creds_file_in_operator_mode() {
    let dir = tempfile::tempdir().unwrap();
    let operator = nkeys::KeyPair::new_operator();
    let operator_jwt = sign_jwt(
        &operator,
        &operator.public_key(),
        "zg-test-operator",
        serde_json::json!({"type": "operator", "version": 2}),
    );
    let system = nkeys::KeyPair::new_account();
    let account = nkeys::KeyPair::new_account();
    let operator_file = write(dir.path(), "operator.jwt", &operator_jwt);
    let conf = format!(
        "operator: \"{}\"\nsystem_account: {sys}\nresolver: MEMORY\n\
         resolver_preload: {{\n  {sys}: \"{sys_jwt}\"\n  {acc}: \"{acc_jwt}\"\n}}\n",
        operator_file.display(),
        sys = system.public_key(),
        sys_jwt = account_jwt(&operator, &system, "SYS"),
        acc = account.public_key(),
        acc_jwt = account_jwt(&operator, &account, "ZENGATE"),
    );
    let server = NatsServer::start_with_config(&conf).await;
    let url = server.url();

    let user = nkeys::KeyPair::new_user();
    let seed = user.seed().unwrap();
    let good = write(
        dir.path(),
        "svc.creds",
        &creds_text(&user_jwt(&account, &user), &seed),
    );
    works(&env(&[
        ("NATS_URL", &url),
        ("NATS_CREDS_FILE", good.to_str().unwrap()),
    ]))
    .await;

    // A user of an account the operator never signed.
    let rogue_account = nkeys::KeyPair::new_account();
    let rogue = nkeys::KeyPair::new_user();
    let rogue_seed = rogue.seed().unwrap();
    let bad = write(
        dir.path(),
        "rogue.creds",
        &creds_text(&user_jwt(&rogue_account, &rogue), &rogue_seed),
    );
    let err = refused(
        &env(&[
            ("NATS_URL", &url),
            ("NATS_CREDS_FILE", bad.to_str().unwrap()),
        ]),
        &[&rogue_seed, &seed],
    )
    .await;
    assert!(is_auth_refusal(&err), "{err}");

    // The right JWT with somebody else's seed cannot sign the nonce.
    let thief_seed = nkeys::KeyPair::new_user().seed().unwrap();
    let stolen = write(
        dir.path(),
        "stolen.creds",
        &creds_text(&user_jwt(&account, &user), &thief_seed),
    );
    let err = refused(
        &env(&[
            ("NATS_URL", &url),
            ("NATS_CREDS_FILE", stolen.to_str().unwrap()),
        ]),
        &[&thief_seed, &seed],
    )
    .await;
    assert!(is_auth_refusal(&err), "{err}");
    assert!(is_auth_refusal(
        &refused(&env(&[("NATS_URL", &url)]), &[]).await
    ));
}

// ---- TLS ---------------------------------------------------------------------

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1/localhost and a client
    /// certificate, all PEM files in a temp dir.
    fn new() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "zengate test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        write(dir.path(), "ca.pem", &ca_cert.pem());
        let issuer = Issuer::new(ca, ca_key);

        let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, file: &str| {
            let mut p = CertificateParams::new(names).unwrap();
            p.distinguished_name.push(DnType::CommonName, file);
            p.extended_key_usages = vec![usage];
            let key = KeyPair::generate().unwrap();
            let cert = p.signed_by(&key, &issuer).unwrap();
            write(dir.path(), &format!("{file}.pem"), &cert.pem());
            write(dir.path(), &format!("{file}-key.pem"), &key.serialize_pem());
        };
        leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            "server",
        );
        leaf(
            vec!["zengate-client".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
            "client",
        );
        Self { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).to_string_lossy().into_owned()
    }

    fn server_block(&self, verify_clients: bool) -> String {
        let verify = if verify_clients {
            format!("  ca_file: \"{}\"\n  verify: true\n", self.path("ca.pem"))
        } else {
            String::new()
        };
        format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n{verify}  timeout: 2\n}}\n",
            self.path("server.pem"),
            self.path("server-key.pem"),
        )
    }
}

#[tokio::test]
async fn tls_with_a_custom_ca() {
    let pki = Pki::new();
    let server = NatsServer::start_with_config(&pki.server_block(false)).await;
    let ca = pki.path("ca.pem");
    // nats:// plus a CA file: the CA implies TLS.
    works(&env(&[
        ("NATS_URL", &server.url()),
        ("NATS_TLS_CA_FILE", &ca),
    ]))
    .await;
    // Without our CA the server's certificate is not trusted.
    let err = refused(&env(&[("NATS_URL", &server.url())]), &[]).await;
    assert!(
        !is_auth_refusal(&err),
        "a TLS failure, not an auth one: {err}"
    );
    let err = refused(
        &env(&[("NATS_URL", &server.url()), ("NATS_TLS_REQUIRED", "true")]),
        &[],
    )
    .await;
    assert!(matches!(err, BusError::Connect { .. }));
}

#[tokio::test]
async fn tls_scheme_requires_tls() {
    let pki = Pki::new();
    let ca = pki.path("ca.pem");
    let tls_server = NatsServer::start_with_config(&pki.server_block(false)).await;
    let tls_url = format!("tls://127.0.0.1:{}", tls_server.port());
    let config = env(&[("NATS_URL", &tls_url), ("NATS_TLS_CA_FILE", &ca)]);
    assert!(config.tls.required);
    works(&config).await;

    // tls:// towards a server without TLS must not fall back to plaintext.
    let plain = NatsServer::start().await;
    let plain_tls_url = format!("tls://127.0.0.1:{}", plain.port());
    refused(
        &env(&[("NATS_URL", &plain_tls_url), ("NATS_TLS_CA_FILE", &ca)]),
        &[],
    )
    .await;
    refused(&NatsConfig::from(plain_tls_url.as_str()), &[]).await;
    // The same server over nats:// works, so the refusal was TLS's doing.
    works(&NatsConfig::from(plain.url())).await;
}

#[tokio::test]
async fn mutual_tls_with_a_client_certificate() {
    let pki = Pki::new();
    let server = NatsServer::start_with_config(&pki.server_block(true)).await;
    let url = server.url();
    let (ca, cert, key) = (
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client-key.pem"),
    );
    works(&env(&[
        ("NATS_URL", &url),
        ("NATS_TLS_CA_FILE", &ca),
        ("NATS_TLS_CERT_FILE", &cert),
        ("NATS_TLS_KEY_FILE", &key),
    ]))
    .await;
    // Trusting the server is not enough: the server wants our certificate.
    refused(&env(&[("NATS_URL", &url), ("NATS_TLS_CA_FILE", &ca)]), &[]).await;
    // A certificate from another CA is refused too.
    let other = Pki::new();
    refused(
        &env(&[
            ("NATS_URL", &url),
            ("NATS_TLS_CA_FILE", &ca),
            ("NATS_TLS_CERT_FILE", &other.path("client.pem")),
            ("NATS_TLS_KEY_FILE", &other.path("client-key.pem")),
        ]),
        &[],
    )
    .await;
}

// ---- clusters ----------------------------------------------------------------

#[tokio::test]
async fn seed_list_with_a_dead_first_url() {
    let server = NatsServer::start_with_config(
        r#"authorization { users = [ { user: svc, password: "seed-pw-0c7d" } ] }"#,
    )
    .await;
    let dead = free_port();
    let list = format!(
        "nats://127.0.0.1:{dead},nats://svc:seed-pw-0c7d@127.0.0.1:{}",
        server.port()
    );
    let config = env(&[("NATS_URL", &list)]);
    assert_eq!(config.servers.len(), 2);
    assert!(!config.display_servers().contains("seed-pw"));
    for _ in 0..6 {
        // Several times: the client shuffles the seeds, so most runs try
        // the dead one first and must move on to the live one.
        works(&config).await;
    }
    let client = bus::connect(&config, "zg-test").await.unwrap();
    round_trip(&client).await;

    // Only dead seeds: the error names them, without the password.
    let dead_only = format!("nats://svc:seed-pw-0c7d@127.0.0.1:{dead}");
    let err = refused(&NatsConfig::from(dead_only), &["seed-pw-0c7d"]).await;
    assert!(
        err.to_string()
            .contains(&format!("nats://127.0.0.1:{dead}")),
        "{err}"
    );
}

#[tokio::test]
async fn unreadable_creds_file_is_reported_without_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let seed = nkeys::KeyPair::new_user().seed().unwrap();
    // A seed but no JWT: not a usable creds file.
    let path = write(dir.path(), "broken.creds", &format!("{seed}\n"));
    let config = env(&[
        ("NATS_URL", "nats://127.0.0.1:1"),
        ("NATS_CREDS_FILE", path.to_str().unwrap()),
    ]);
    let err = refused(&config, &[&seed]).await;
    assert!(
        matches!(&err, BusError::Credentials { path: p, .. } if p.ends_with("broken.creds")),
        "{err}"
    );
}
