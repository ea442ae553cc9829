//! The Linux-only TUN helper behind `LinuxTun.open`.

use crate::error::{Error, Result};

/// Opens (creating if needed) the TUN device `name`, with `IFF_VNET_HDR` and the
/// segmentation offloads if `offloads` (a plain TUN when the kernel refuses them; the
/// driver tells which on attach); returns the raw fd, now owned by the Java caller.
#[cfg(target_os = "linux")]
pub fn open(name: &str, offloads: bool) -> Result<i32> {
    use std::os::fd::IntoRawFd;
    let opened = if offloads {
        tapemu::driver::open_tun_offload(name).map(|(fd, _name, got)| {
            tracing::info!("TUN {name}: offloads {got:?}");
            fd
        })
    } else {
        tapemu::driver::open_tun(name).map(|(fd, _name)| fd)
    };
    let fd = opened.map_err(|e| Error::Io(format!("cannot open TUN {name}: {e}")))?;
    Ok(fd.into_raw_fd())
}

/// Not available off desktop Linux (Android apps get their fd from `VpnService`).
#[cfg(not(target_os = "linux"))]
pub fn open(name: &str, _offloads: bool) -> Result<i32> {
    Err(Error::Io(format!(
        "cannot open TUN {name}: LinuxTun is for desktop Linux only"
    )))
}
