//! A kernel TAP device opened through `/dev/net/tun`, shared by the test peers
//! (`l2peer`, `tap-vxlan-relay`).
//!
//! The device is created in the network namespace of the thread that opens it and lives
//! as long as the returned [`TapDevice`] (it is not made persistent).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;

/// Longest interface name the kernel accepts (`IFNAMSIZ` less the NUL).
pub const MAX_IFNAME_LEN: usize = libc::IFNAMSIZ - 1;

/// A kernel TAP device (`IFF_TAP | IFF_NO_PI`): every read returns one Ethernet frame
/// (without FCS), every write sends one.
#[derive(Debug)]
pub struct TapDevice {
    file: File,
    name: String,
}

impl TapDevice {
    /// Creates (or attaches to) the TAP device `name` in the calling thread's network
    /// namespace. `nonblocking` opens the fd with `O_NONBLOCK`, as async drivers need.
    pub fn open(name: &str, nonblocking: bool) -> io::Result<Self> {
        if name.is_empty() || name.len() > MAX_IFNAME_LEN || name.contains(['/', ' ', '\0']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid interface name {name:?} (1..={MAX_IFNAME_LEN} bytes)"),
            ));
        }
        let mut flags = libc::O_CLOEXEC;
        if nonblocking {
            flags |= libc::O_NONBLOCK;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(flags)
            .open("/dev/net/tun")
            .map_err(|e| io::Error::new(e.kind(), format!("open /dev/net/tun: {e}")))?;

        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
            *dst = *src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `req` is, and the fd
        // is a valid open /dev/net/tun descriptor for the duration of the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("ioctl(TUNSETIFF, {name:?}, IFF_TAP|IFF_NO_PI): {e}"),
            ));
        }
        // The kernel writes back the name it used (identical unless a %d pattern was given).
        let used: Vec<u8> = req
            .ifr_name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        let name = String::from_utf8_lossy(&used).into_owned();
        Ok(TapDevice { file, name })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one frame into `buf`, returning its length.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Writes one frame.
    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        (&self.file).write(frame)
    }

    /// Another handle on the same device (for a second thread).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(TapDevice {
            file: self.file.try_clone()?,
            name: self.name.clone(),
        })
    }

    /// Gives up the device as an owned fd (the device lives as long as that fd).
    pub fn into_fd(self) -> OwnedFd {
        self.file.into()
    }

    /// Runs `ip link set NAME [master MASTER] up` in the calling process's namespace.
    pub fn set_up(&self, master: Option<&str>) -> io::Result<()> {
        let mut cmd = Command::new("ip");
        cmd.args(["link", "set", "dev", &self.name]);
        if let Some(m) = master {
            cmd.args(["master", m]);
        }
        cmd.arg("up");
        let out = cmd.output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "ip link set {} {}up failed ({}): {}",
                self.name,
                master.map(|m| format!("master {m} ")).unwrap_or_default(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}

impl AsFd for TapDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for TapDevice {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}
