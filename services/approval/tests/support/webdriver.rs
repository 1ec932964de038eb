//! A minimal WebDriver client (W3C protocol over HTTP) driving a headless
//! Debian `chromium` through `chromedriver` on a free loopback port.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use zengate_testkit::{eventually, free_port};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver with one browser session. Both end on drop.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
    _driver: Child,
}

impl Browser {
    /// Fails (does not skip) when the browser is not installed.
    pub async fn start() -> Self {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).is_file(),
                "{bin} is missing: run scripts/setup.sh (installs Debian's chromium and chromium-driver)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn chromedriver");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        eventually("chromedriver ready", Duration::from_secs(20), || async {
            let v: Value = http
                .get(format!("{base}/status"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (v["value"]["ready"] == true).then_some(())
        })
        .await;
        let profile = tempfile::Builder::new()
            .prefix("zg-chromium-")
            .tempdir()
            .unwrap();
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,1000".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let res: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromium session not created: {res}"))
            .to_owned();
        Self {
            http,
            base,
            session,
            _profile: profile,
            _driver: driver,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method, path, body).await {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Browser::call`] that returns WebDriver's refusals (a stale element,
    /// say) instead of failing the test.
    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let v: Value = res.json().await.unwrap();
        if status.is_success() {
            Ok(v["value"].clone())
        } else {
            Err(format!("webdriver {path}: {status} {v}"))
        }
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Element ids matching a CSS selector (possibly none).
    pub async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e[ELEMENT].as_str().unwrap().to_owned())
            .collect()
    }

    /// Waits for an element matching `css`.
    pub async fn wait_for(&self, css: &str) -> String {
        eventually(
            &format!("element {css}"),
            Duration::from_secs(15),
            || async { self.find_all(css).await.into_iter().next() },
        )
        .await
    }

    pub async fn click(&self, element: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    pub async fn clear(&self, element: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await;
    }

    pub async fn type_text(&self, element: &str, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// The text of the first element matching `css`, once `ready` accepts
    /// it. The element is looked up again on every try, so a live update
    /// that re-renders the list between lookup and read (leaving a stale
    /// element) is waited out instead of failing the test.
    pub async fn wait_text(&self, css: &str, ready: impl Fn(&str) -> bool) -> String {
        eventually(
            &format!("text of {css} as expected"),
            Duration::from_secs(15),
            || async {
                let element = self.find_all(css).await.into_iter().next()?;
                let text = self.try_text(&element).await?;
                ready(&text).then_some(text)
            },
        )
        .await
    }

    /// The texts of every element matching `css` (possibly none), read
    /// again from a fresh lookup when the list was re-rendered mid-read.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        eventually(
            &format!("texts of {css}"),
            Duration::from_secs(15),
            || async {
                let mut out = Vec::new();
                for element in self.find_all(css).await {
                    out.push(self.try_text(&element).await?);
                }
                Some(out)
            },
        )
        .await
    }

    /// An element's text; `None` when WebDriver refuses (a stale element).
    async fn try_text(&self, element: &str) -> Option<String> {
        let text = self
            .try_call(
                reqwest::Method::GET,
                &format!("/element/{element}/text"),
                None,
            )
            .await
            .ok()?;
        Some(text.as_str().unwrap_or_default().to_owned())
    }

    /// Types `keys` on the page as a user would (not into one element): the
    /// console's document-level shortcuts see them.
    pub async fn press_keys(&self, keys: &str) {
        let mut actions = Vec::new();
        for c in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": c.to_string()}));
            actions.push(json!({"type": "keyUp", "value": c.to_string()}));
        }
        self.call(
            reqwest::Method::POST,
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        )
        .await;
    }

    /// Resizes the browser window (CSS pixels).
    pub async fn set_window(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// Attribute (or property) `name` of an element.
    pub async fn attribute(&self, element: &str, name: &str) -> Option<String> {
        self.call(
            reqwest::Method::GET,
            &format!("/element/{element}/attribute/{name}"),
            None,
        )
        .await
        .as_str()
        .map(str::to_owned)
    }

    pub async fn execute(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Saves a PNG screenshot of the viewport.
    pub async fn screenshot(&self, path: &Path) {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    pub async fn quit(self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

/// `target/screenshots/<name>` in the workspace (kept as test artefacts).
pub fn artifact(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/screenshots")
        .join(name)
}
