//! A simulated suspend: `CLOCK_BOOTTIME` jumps while tokio's clock (and so the driver's
//! sleep) stands still, as on a phone that slept through a lease's renewal time.

use std::time::Duration;

use dhcproto::v4::MessageType;

use super::server::{spawn_dhcp_server, SERVER_IP};
use super::*;
use crate::{DhcpConfig, DhcpEvent};

#[tokio::test(start_paused = true)]
async fn a_renewal_missed_during_a_suspend_goes_out_on_the_next_wake_up() {
    let (link, peer) = channel(64);
    let (mut config, clock) = paused_config();
    config.tap.ipv4 = Ipv4Mode::Dhcp(DhcpConfig::default());
    let (handle, mut events) = Driver::start(config, link, None).await.expect("start");
    // Four-hour leases: T1 at two hours.
    let mut dhcp = spawn_dhcp_server(peer.from_driver, peer.to_driver, 4 * 3600);
    next_event(&mut events, |e| match e {
        DriverEvent::Tap(Event::Dhcp(DhcpEvent::LeaseAcquired(lease))) => Some(lease),
        _ => None,
    })
    .await;
    while dhcp.try_recv().is_ok() {}
    // The probes and announcements are done; the driver sleeps until T1.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(dhcp.try_recv().is_err());

    // Two hours and a minute asleep: the driver's sleep still has about two hours to go
    // on tokio's clock, but T1 has passed.
    clock.suspend(Duration::from_secs(2 * 3600 + 60));
    let woke = tokio::time::Instant::now();
    // Anything wakes the driver: here a command.
    handle.stats().await.expect("stats");
    let request = timeout(WAIT, dhcp.recv())
        .await
        .expect("a REQUEST at once")
        .expect("server alive");
    assert_eq!(request.kind, MessageType::Request);
    assert_eq!(
        request.ip_dst, SERVER_IP,
        "a renewal is unicast to the server"
    );
    assert_eq!(
        request.at, woke,
        "sent on the wake-up, not when the old sleep ends"
    );
    let renewed = next_event(&mut events, |e| match e {
        DriverEvent::Tap(Event::Dhcp(DhcpEvent::LeaseRenewed(lease))) => Some(lease),
        _ => None,
    })
    .await;
    assert_eq!(renewed.address, super::server::OFFERED);
    handle.stop().await;
}
