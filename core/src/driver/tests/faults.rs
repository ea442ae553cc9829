//! The fault layer in the driver, on a channel link and tokio's paused time: faults
//! from [`DriverConfig::link_faults`] reach the frames of each direction and its
//! counters, held frames are released by the loop on time, and a lease still comes
//! through a link that loses 30 % of the frames both ways.

use std::time::Duration;

use super::server::spawn_dhcp_server;
use super::*;
use crate::{DhcpConfig, DhcpEvent};

/// Within the first eight transmissions of the RFC 2131 schedule (0, 4, 12, 28, 60, 124,
/// 188, 252 s, each ±1 s).
const LOSSY_LEASE: Duration = Duration::from_secs(256);

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
    assert!(replies
        .iter()
        .all(|at| *at >= sent + Duration::from_millis(200)));
    assert!(
        replies[0] < sent + Duration::from_millis(300),
        "{replies:?}"
    );
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
    assert!(
        replies[0] >= sent + Duration::from_millis(300),
        "{replies:?}"
    );
    assert!(
        replies[0] < sent + Duration::from_millis(400),
        "{replies:?}"
    );
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

/// RFC 2131 §4.1: DISCOVERs and REQUESTs are retransmitted after about 4, 8, 16, 32, then
/// every 64 s. With 30 % of the frames lost each way, a round trip succeeds about half the
/// time: most seeds get a lease in seconds, some only after several retransmissions
/// (seed 2 loses five DISCOVER round trips in a row and gets its lease at about 131 s).
/// Every seed gets one within the first eight transmissions (by 252 s, [`LOSSY_LEASE`]),
/// and the client keeps to the backoff: no more DHCP messages than the schedule allows.
#[tokio::test(start_paused = true)]
async fn a_lease_comes_through_a_link_losing_30_percent_both_ways() {
    for seed in 1..=8 {
        let (link, peer) = channel(64);
        let mut config = faulty_config(&format!("drop=0.3,seed={seed}"));
        config.tap.ipv4 = Ipv4Mode::Dhcp(DhcpConfig::default());
        let (handle, mut events) = Driver::start(config, link, None).await.expect("start");
        let _dhcp = spawn_dhcp_server(peer.from_driver, peer.to_driver, 3600);
        let started = tokio::time::Instant::now();
        let leased = timeout(LOSSY_LEASE, async {
            loop {
                let event = events.recv().await.expect("driver alive");
                if matches!(
                    event,
                    DriverEvent::Tap(Event::Dhcp(DhcpEvent::LeaseAcquired(_)))
                ) {
                    return;
                }
            }
        })
        .await;
        if leased.is_err() {
            let stats = handle.stats().await;
            panic!("seed {seed}: no lease within {LOSSY_LEASE:?}: {stats:#?}");
        }
        let took = started.elapsed();
        let stats = handle.stats().await.expect("stats");
        let f = stats.link_faults;
        assert!(
            f.from_link.frames + f.to_link.frames >= 4,
            "seed {seed}: {f:?}"
        );
        // Transmissions by `took` under the backoff (first at 0, then after ≥ 3, 7, 15,
        // 31, 63 … s), for DISCOVERs and REQUESTs together, plus the last REQUEST.
        let mut allowed = 1u64;
        let mut at = 0u64;
        for gap in [3u64, 7, 15, 31].into_iter().chain(std::iter::repeat(63)) {
            at += gap;
            if at > took.as_secs() {
                break;
            }
            allowed += 1;
        }
        assert!(
            stats.tap.dhcp.messages_out <= 2 * allowed,
            "seed {seed}: {} DHCP messages in {took:?}",
            stats.tap.dhcp.messages_out
        );
        println!(
            "seed {seed}: lease after {took:?}, {} of {} frames dropped",
            f.from_link.dropped + f.to_link.dropped,
            f.from_link.frames + f.to_link.frames
        );
        handle.stop().await;
    }
}
