//! The lease file: the last lease of a TUN, kept between runs so that `tapemu run`
//! started again asks for the same address (INIT-REBOOT) instead of discovering a new
//! one. JSON in [`StoredLease`]'s form, one file per TUN, written on every lease and
//! renewal (to a temporary file renamed over the old one, so a crash never leaves half a
//! file), removed when the lease is lost or released.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tapemu::present::StoredLease;
use tapemu::Lease;

/// Where lease files go unless `$TAPEMU_STATE_DIR` names another directory.
pub const STATE_DIR: &str = "/var/lib/tapemu";

/// The default lease file of the TUN `tun`: `<state dir>/<tun>.lease`.
pub fn default_path(tun: &str) -> PathBuf {
    let dir = std::env::var_os("TAPEMU_STATE_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from(STATE_DIR), PathBuf::from);
    dir.join(format!("{tun}.lease"))
}

/// Seconds since the UNIX epoch on the wall clock.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The lease stored at `path`, as a lease on this process's clock (it may have expired:
/// the DHCP client then starts with discovery). A missing file is no lease; an
/// unreadable or corrupt one is a warning and no lease, never a failure.
pub fn load(path: &Path) -> Option<Lease> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!("lease file {}: {e}; starting without it", path.display());
            return None;
        }
    };
    match serde_json::from_str::<StoredLease>(&text) {
        Ok(stored) => Some(stored.to_lease(Instant::now(), unix_now())),
        Err(e) => {
            tracing::warn!(
                "lease file {}: not a stored lease ({e}); starting without it",
                path.display()
            );
            None
        }
    }
}

/// Stores `lease` at `path`, creating its directory.
pub fn store(path: &Path, lease: &Lease) -> Result<(), String> {
    let stored = StoredLease::new(lease, Instant::now(), unix_now());
    let json = serde_json::to_string(&stored).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, json + "\n").map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Forgets the stored lease (lost or released).
pub fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("lease file {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn scratch(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("tapemu-lease-{}-{name}", std::process::id()))
    }

    fn lease() -> Lease {
        Lease {
            address: Ipv4Addr::new(192, 0, 2, 150),
            prefix_len: 24,
            gateway: Some(Ipv4Addr::new(192, 0, 2, 1)),
            lease_time: Some(Duration::from_secs(3600)),
            t1: Some(Duration::from_secs(1800)),
            t2: Some(Duration::from_secs(3150)),
            server: Ipv4Addr::new(192, 0, 2, 1),
            acquired_at: Instant::now(),
            routes: Vec::new(),
            dns: Vec::new(),
            domain: None,
            search: Vec::new(),
            mtu: None,
            broadcast: None,
        }
    }

    #[test]
    fn a_stored_lease_loads_back_and_is_removed() {
        let dir = scratch("roundtrip");
        let path = dir.join("deeper").join("tun9.lease");
        store(&path, &lease()).expect("store");
        let back = load(&path).expect("loaded");
        assert_eq!(back.address, Ipv4Addr::new(192, 0, 2, 150));
        assert_eq!(back.lease_time, Some(Duration::from_secs(3600)));
        assert!(back.expires_at().is_some_and(|e| e > Instant::now()));
        remove(&path);
        assert!(load(&path).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_or_missing_file_is_no_lease() {
        let dir = scratch("corrupt");
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("tun9.lease");
        assert!(load(&path).is_none());
        std::fs::write(&path, "{\"address\": 12").expect("write");
        assert!(load(&path).is_none());
        // A directory where the file should be cannot be read either.
        assert!(load(&dir).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_default_path_is_per_tun() {
        let path = default_path("tun7");
        assert!(path.ends_with("tun7.lease"), "{}", path.display());
    }
}
