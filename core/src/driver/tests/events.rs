//! The event queue under a consumer that does not read: a LAN peer flooding router
//! advertisements whose router lifetime alternates, so that each one changes the IPv6
//! information, while DHCP leases are acquired and renewed.

use std::time::Duration;

use super::server::{router_advertisement, spawn_dhcp_server, ROUTER_LL};
use super::*;
use crate::{DhcpConfig, DhcpEvent, Ipv6Config, Ipv6Event, Ipv6Info, Ipv6Mode};

/// The IPv6 information of an event, if it carries one.
fn ipv6_info(event: &DriverEvent) -> Option<&Ipv6Info> {
    match event {
        DriverEvent::Tap(Event::Ipv6(Ipv6Event::Changed(info))) => Some(info),
        _ => None,
    }
}

fn has_default_route(info: &Ipv6Info) -> bool {
    info.routes
        .iter()
        .any(|r| r.prefix_len == 0 && r.gateway == Some(ROUTER_LL))
}

/// Sends RAs `range`, the router lifetime alternating 0 (even) and 1800 s (odd).
async fn flood(to_driver: &tokio::sync::mpsc::Sender<Vec<u8>>, range: std::ops::Range<u32>) {
    let [without, with] = [router_advertisement(0), router_advertisement(1800)];
    for i in range {
        let ra = if i % 2 == 0 { &without } else { &with };
        to_driver.send(ra.clone()).await.expect("driver alive");
    }
}

#[tokio::test(start_paused = true)]
async fn a_stalled_consumer_keeps_a_bounded_queue_the_latest_ipv6_info_and_every_lease_event() {
    const RAS: u32 = 100_000;
    let (link, peer) = channel(256);
    let (mut config, _clock) = paused_config();
    config.tap.ipv4 = Ipv4Mode::Dhcp(DhcpConfig::default());
    config.tap.ipv6 = Ipv6Mode::Slaac(Ipv6Config::default());
    let (handle, mut events) = Driver::start(config, link, None).await.expect("start");
    let to_driver = peer.to_driver.clone();
    let mut dhcp = spawn_dhcp_server(peer.from_driver, peer.to_driver, 600);
    // Nobody reads the events from here until the end.

    // The lease is bound, and the link-local address has passed DAD (within 2 s).
    wait_for_stats(&handle, false, |s| s.lease.is_some()).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    flood(&to_driver, 0..RAS / 2).await;
    // Renewal at T1 (300 s), answered: a lease event while the backlog is full.
    tokio::time::sleep(Duration::from_secs(300)).await;
    flood(&to_driver, RAS / 2..RAS).await;
    let stats = wait_for_stats(&handle, false, |s| s.tap.ndp.ra_in == u64::from(RAS)).await;
    let mut requests = 0;
    while let Ok(r) = dhcp.try_recv() {
        requests += usize::from(r.kind == dhcproto::v4::MessageType::Request);
    }
    assert_eq!(requests, 2, "the first request and the renewal");

    // What waits for the consumer is a handful of events, not one per RA.
    let queued = events.len();
    assert!(queued <= 8, "{queued} events queued");
    assert_eq!(stats.events_dropped, 0);
    assert_eq!(stats.tap.queues.drop_event_full, 0);

    let got: Vec<DriverEvent> = std::iter::from_fn(|| events.try_recv().ok()).collect();
    assert_eq!(got.len(), queued);
    let leases: Vec<&DhcpEvent> = got
        .iter()
        .filter_map(|e| match e {
            DriverEvent::Tap(Event::Dhcp(d)) => Some(d),
            _ => None,
        })
        .collect();
    assert!(
        matches!(
            leases.as_slice(),
            [DhcpEvent::LeaseAcquired(_), DhcpEvent::LeaseRenewed(_)]
        ),
        "{leases:?}"
    );
    // One IPv6 event, with the newest information: the last RA (odd) made the router
    // the default router, and the global address is there.
    let infos: Vec<&Ipv6Info> = got.iter().filter_map(ipv6_info).collect();
    assert_eq!(infos.len(), 1, "{infos:?}");
    assert!(has_default_route(infos[0]), "{:?}", infos[0]);
    assert_eq!(infos[0].addresses.len(), 1);

    // A consumer that keeps up sees every change again.
    to_driver
        .send(router_advertisement(0))
        .await
        .expect("driver alive");
    let info = next_event(&mut events, |e| ipv6_info(&e).cloned()).await;
    assert!(!has_default_route(&info), "{info:?}");
    handle.stop().await;
}
