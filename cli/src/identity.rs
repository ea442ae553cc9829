//! The default MAC address: stable for one host and TUN name, so that a restarted
//! `tapemu run` is the same host to the DHCP server and to the LAN's switches (as
//! systemd's persistent MAC policy makes one from `/etc/machine-id` and the interface
//! name).

use tapemu::MacAddr;

/// Where the host's secret is read from.
pub const MACHINE_ID: &str = "/etc/machine-id";

/// The MAC of the TUN `tun`: [`MacAddr::stable`] of the machine id and the name; `None`
/// (a random MAC, with a warning) when the machine id cannot be read.
pub fn default_mac(tun: &str) -> Option<MacAddr> {
    let why = match std::fs::read_to_string(MACHINE_ID) {
        Ok(id) if !id.trim().is_empty() => return Some(MacAddr::stable(id.trim().as_bytes(), tun)),
        Ok(_) => format!("{MACHINE_ID} is empty"),
        Err(e) => format!("{MACHINE_ID}: {e}"),
    };
    tracing::warn!(
        "{why}; using a random MAC, which changes on every start (set --mac to keep one)"
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_mac_is_stable_per_tun_name() {
        let Some(a) = default_mac("tun0") else {
            // No machine id on this host: nothing stable to check.
            return;
        };
        assert_eq!(default_mac("tun0"), Some(a));
        assert_ne!(default_mac("tun1"), Some(a));
        assert_eq!(a.0[0] & 0x03, 0x02, "locally administered unicast: {a}");
    }
}
