//! The Linux-only TUN helper behind `LinuxTun.open`.

use crate::error::{Error, Result};

/// Opens (creating if needed) the TUN device `name`; returns the raw fd, now owned by
/// the Java caller.
#[cfg(target_os = "linux")]
pub fn open(name: &str) -> Result<i32> {
    use std::os::fd::IntoRawFd;
    let (fd, _name) = tapemu::driver::open_tun(name)
        .map_err(|e| Error::Io(format!("cannot open TUN {name}: {e}")))?;
    Ok(fd.into_raw_fd())
}

/// Not available off desktop Linux (Android apps get their fd from `VpnService`).
#[cfg(not(target_os = "linux"))]
pub fn open(name: &str) -> Result<i32> {
    Err(Error::Io(format!(
        "cannot open TUN {name}: LinuxTun is for desktop Linux only"
    )))
}
