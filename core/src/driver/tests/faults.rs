//! The fault layer in the driver, on a channel link and tokio's paused time: faults
//! from [`DriverConfig::link_faults`] reach the frames of each direction and its
//! counters, held frames are released by the loop on time, and a lease still comes
//! through a link that loses 30 % of the frames both ways.

use std::time::Duration;

use super::server::spawn_dhcp_server;
use super::*;
use crate::{DhcpConfig, DhcpEvent};

fn faulty_config(spec: &str) -> DriverConfig {
    let (mut config, _clock) = paused_config();
    config.link_faults = Some(spec.parse().expect("spec"));
    config
}

/// The ARP replies to the peer that arrive within `within`, each with when it came.
async fn arp_replies(peer: &mut ChannelPeer, within: Duration) -> Vec<tokio::time::Instant> {
    let mut at = Vec::new();
    let _ = timeout(within, async {
        while let Some(f) = peer.from_driver.recv().await {
            if is_arp_reply_to_peer(&f) {
                at.push(tokio::time::Instant::now());
            }
        }
    })
    .await;
    at
}

#[tokio::test(start_paused = true)]
async fn frames_to_the_link_are_delayed_and_duplicated() {
    let (link, mut peer) = channel(64);
    let config = faulty_config("delay=200ms,dup=1,dir=out,seed=1");
    let (handle, _events) = Driver::start(config, link, None).await.expect("start");
    let sent = tokio::time::Instant::now();
    peer.to_driver
        .send(arp_request_for_us())
        .await
        .expect("send");
    let replies = arp_replies(&mut peer, Duration::from_secs(2)).await;
    assert_eq!(replies.len(), 2, "the reply and its copy");
    assert!(replies.iter().all(|at| *at >= sent + Duration::from_millis(200)));
    assert!(replies[0] < sent + Duration::from_millis(300), "{replies:?}");
    let stats = handle.stats().await.expect("stats");
    let f = stats.link_faults;
    assert!(f.to_link.delayed >= 1 && f.to_link.duplicated >= 1, "{f:?}");
    assert_eq!(f.from_link, FaultCounters::default(), "dir=out only");
    handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn frames_from_the_link_are_delayed_by_the_loop_timer() {
    let (link, mut peer) = channel(64);
    let config = faulty_config("delay=300ms,dir=in");
    let (handle, _events) = Driver::start(config, link, None).await.expect("start");
    let sent = tokio::time::Instant::now();
    peer.to_driver
        .send(arp_request_for_us())
        .await
        .expect("send");
    let replies = arp_replies(&mut peer, Duration::from_secs(2)).await;
    assert_eq!(replies.len(), 1);
    assert!(replies[0] >= sent + Duration::from_millis(300), "{replies:?}");
    assert!(replies[0] < sent + Duration::from_millis(400), "{replies:?}");
    let f = handle.stats().await.expect("stats").link_faults;
    assert_eq!(f.from_link.delayed, 1, "{f:?}");
    assert_eq!(f.to_link, FaultCounters::default(), "{f:?}");
    handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn dropped_frames_are_counted_as_faults_not_as_link_drops() {
    let (link, mut peer) = channel(64);
    let config = faulty_config("drop=1,dir=in");
    let (handle, _events) = Driver::start(config, link, None).await.expect("start");
    for _ in 0..3 {
        peer.to_driver
            .send(arp_request_for_us())
            .await
            .expect("send");
    }
    assert!(arp_replies(&mut peer, Duration::from_secs(2))
        .await
        .is_empty());
    let stats = handle.stats().await.expect("stats");
    assert_eq!(stats.link_faults.from_link.dropped, 3, "{stats:?}");
    assert_eq!(stats.link_dropped_in, 0, "{stats:?}");
    assert_eq!(stats.tap.link.frames_in, 0, "{stats:?}");
    handle.stop().await;
}

/// RFC 2131 §4.1: DISCOVERs are retransmitted after about 4, 8, 16, 32 and 64 s; with a
/// third of the frames lost each way a lease comes within that backoff, for any seed.
#[tokio::test(start_paused = true)]
async fn a_lease_comes_through_a_link_losing_30_percent_both_ways() {
    for seed in 1..=8 {
        let (link, peer) = channel(64);
        let mut config = faulty_config(&format!("drop=0.3,seed={seed}"));
        config.tap.ipv4 = Ipv4Mode::Dhcp(DhcpConfig::default());
        let (handle, mut events) = Driver::start(config, link, None).await.expect("start");
        let _dhcp = spawn_dhcp_server(peer.from_driver, peer.to_driver, 3600);
        let started = tokio::time::Instant::now();
        timeout(Duration::from_secs(130), async {
            loop {
                let event = events.recv().await.expect("driver alive");
                if matches!(event, DriverEvent::Tap(Event::Dhcp(DhcpEvent::LeaseAcquired(_)))) {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("seed {seed}: no lease within 130 s"));
        let stats = handle.stats().await.expect("stats");
        let f = stats.link_faults;
        assert!(
            f.from_link.frames + f.to_link.frames >= 4,
            "seed {seed}: {f:?}"
        );
        println!(
            "seed {seed}: lease after {:?}, {} of {} frames dropped",
            started.elapsed(),
            f.from_link.dropped + f.to_link.dropped,
            f.from_link.frames + f.to_link.frames
        );
        handle.stop().await;
    }
}
