//! Finds the server binaries: an explicit override, then the project's own
//! `.dev/bin` (filled by `scripts/setup.sh`), then `PATH`. A `nats-server`
//! older than [`MIN_NATS_VERSION`] is refused with a message saying how to
//! get a newer one.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Oldest nats-server whose JetStream features zengate relies on.
pub const MIN_NATS_VERSION: (u32, u32) = (2, 10);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

fn find(env_var: &str, name: &str) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env_var) {
        return Some(PathBuf::from(p));
    }
    let local = workspace_root().join(".dev/bin").join(name);
    if local.is_file() {
        return Some(local);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

fn parse_version(text: &str) -> Option<(u32, u32)> {
    let v = text.split(" v").nth(1)?;
    let mut parts = v.trim().split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The `nats-server` to run, checked against [`MIN_NATS_VERSION`].
pub fn nats_server_binary() -> PathBuf {
    let bin = find("ZENGATE_NATS_SERVER", "nats-server").unwrap_or_else(|| {
        panic!("nats-server not found: run scripts/setup.sh (it installs one under .dev/bin)")
    });
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let version = parse_version(&text)
        .unwrap_or_else(|| panic!("cannot read the version of {}: {text:?}", bin.display()));
    assert!(
        version >= MIN_NATS_VERSION,
        "{} is {text:?}; zengate needs nats-server >= {}.{}: run scripts/setup.sh",
        bin.display(),
        MIN_NATS_VERSION.0,
        MIN_NATS_VERSION.1
    );
    bin
}

/// The `redis-server` to run.
pub fn redis_server_binary() -> PathBuf {
    find("ZENGATE_REDIS_SERVER", "redis-server")
        .unwrap_or_else(|| panic!("redis-server not found: run scripts/setup.sh"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions() {
        assert_eq!(
            super::parse_version("nats-server: v2.12.8\n"),
            Some((2, 12))
        );
        assert_eq!(super::parse_version("nats-server: v2.9.10"), Some((2, 9)));
        assert!(super::parse_version("garbage").is_none());
    }
}
