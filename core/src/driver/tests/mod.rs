//! Driver tests without privileges: a channel link, local UDP and TCP peers, and a
//! `SOCK_SEQPACKET` socket pair standing in for the TUN fd (one packet per read, like a
//! TUN). Tests with real sockets wait on events and counters with bounded timeouts;
//! tests on channel links alone run on tokio's paused time with a [`SimulatedClock`].

mod events;
mod faults;
mod fd_link;
mod handle;
mod offload;
mod roam;
mod server;
mod suspend;

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use tokio::time::timeout;

use super::link::MAX_FRAME;
use super::sys;
use super::*;
use crate::wire::arp::ArpPacket;
use crate::{Event, Ipv4Event};
use crate::{Ipv4Interface, Ipv4Mode, MacAddr};

const WAIT: Duration = Duration::from_secs(5);
const PEER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x7b]);

fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
    sys::seqpacket_pair().expect("socketpair")
}

fn config() -> DriverConfig {
    let iface = Ipv4Interface::new([192, 0, 2, 123].into(), 24, Some([192, 0, 2, 1].into()));
    DriverConfig {
        tap: Config {
            mac: Some(OUR_MAC),
            ipv4: Ipv4Mode::Static(iface),
            ipv6: crate::Ipv6Mode::Disabled,
            ..Config::default()
        },
        ..DriverConfig::default()
    }
}

/// [`config`] on a simulated clock, for tests on tokio's paused time.
fn paused_config() -> (DriverConfig, SimulatedClock) {
    let clock = SimulatedClock::new();
    let config = DriverConfig {
        clock: Arc::new(clock.clone()),
        ..config()
    };
    (config, clock)
}

async fn next_frame(peer: &mut ChannelPeer, pred: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    timeout(WAIT, async {
        loop {
            let frame = peer.from_driver.recv().await.expect("driver alive");
            if pred(&frame) {
                return frame;
            }
        }
    })
    .await
    .expect("frame in time")
}

/// The next event matching `pred`.
async fn next_event<T>(events: &mut DriverEvents, pred: impl Fn(DriverEvent) -> Option<T>) -> T {
    timeout(WAIT, async {
        loop {
            if let Some(t) = pred(events.recv().await.expect("driver alive")) {
                return t;
            }
        }
    })
    .await
    .expect("event in time")
}

/// Polls the counters until `pred` holds, within [`WAIT`] (or 20 s with `long`). Each
/// poll is a round trip through the driver's loop; between polls the test waits a
/// millisecond, which on paused time lets the clock move on to the driver's timers.
async fn wait_for_stats(
    handle: &DriverHandle,
    long: bool,
    pred: impl Fn(&DriverStats) -> bool,
) -> DriverStats {
    let limit = if long { Duration::from_secs(20) } else { WAIT };
    timeout(limit, async {
        loop {
            let stats = handle.stats().await.expect("stats");
            if pred(&stats) {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("counters in time")
}

/// A broadcast UDP packet (port 5000 to 5000) from our address, as the kernel writes it
/// to the TUN.
fn broadcast_udp_from_us(payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::new();
    etherparse::PacketBuilder::ipv4([192, 0, 2, 123], [255, 255, 255, 255], 64)
        .udp(5000, 5000)
        .write(&mut packet, payload)
        .expect("build");
    packet
}

fn arp_request_for_us() -> Vec<u8> {
    ArpPacket::request(PEER_MAC, [192, 0, 2, 1].into(), [192, 0, 2, 123].into())
        .to_frame(MacAddr::BROADCAST)
}

fn write_packet(fd: &OwnedFd, packet: &[u8]) -> io::Result<()> {
    sys::write(fd.as_raw_fd(), packet).map(drop)
}

fn is_arp_reply_to_peer(f: &[u8]) -> bool {
    f.len() >= 22 && f[..6] == PEER_MAC.0 && f[12..14] == [8, 6] && f[21] == 2
}

/// A gratuitous ARP (RFC 5227 announcement) for our static address.
fn is_announcement(f: &[u8]) -> bool {
    f.len() >= 42 && f[..6] == [0xff; 6] && f[12..14] == [8, 6] && f[28..32] == f[38..42]
}

#[tokio::test]
async fn answers_arp_and_forwards_both_ways() {
    let (link, mut peer) = channel(64);
    let (tun_ours, tun_kernel) = seqpacket_pair();
    let (handle, mut events) = Driver::start(config(), link, Some(tun_ours))
        .await
        .expect("start");
    let up = timeout(WAIT, events.recv())
        .await
        .expect("event")
        .expect("open");
    assert!(
        matches!(up, DriverEvent::Tap(Event::Ipv4(Ipv4Event::Up(_)))),
        "{up:?}"
    );

    // ARP request for us from the peer → reply to the peer.
    peer.to_driver
        .send(arp_request_for_us())
        .await
        .expect("send");
    let reply = next_frame(&mut peer, |f| f[..6] == PEER_MAC.0 && f[12..14] == [8, 6]).await;
    assert_eq!(reply[6..12], OUR_MAC.0);

    // TUN → link: a broadcast UDP packet comes out as a frame.
    let packet = broadcast_udp_from_us(b"hello");
    write_packet(&tun_kernel, &packet).expect("write");
    let frame = next_frame(&mut peer, |f| f[..6] == [0xff; 6] && f[12..14] == [8, 0]).await;
    assert_eq!(&frame[14..], &packet[..]);

    // Link → TUN: a unicast IP packet for us comes out of the TUN, header stripped.
    let mut ingress = Vec::new();
    etherparse::PacketBuilder::ethernet2(PEER_MAC.0, OUR_MAC.0)
        .ipv4([192, 0, 2, 1], [192, 0, 2, 123], 64)
        .udp(7, 7)
        .write(&mut ingress, b"back")
        .expect("build");
    peer.to_driver.send(ingress.clone()).await.expect("send");
    let kernel = PacketFd::new(tun_kernel).expect("register");
    let mut bufs = vec![vec![0u8; 2048]];
    let mut lens = [0usize];
    let n = timeout(WAIT, kernel.read_batch(&mut bufs, 0, &mut lens))
        .await
        .expect("packet in time")
        .expect("read");
    assert_eq!(n, 1);
    let got = &bufs[0][..lens[0]];
    assert_eq!(got, &ingress[14..]);

    let stats = handle.stats().await.expect("stats");
    assert!(stats.tun_attached);
    assert_eq!(stats.tap.tun.packets_in, 1);
    assert_eq!(stats.link, "channel:");

    let old = handle.detach_tun().await.expect("detach");
    assert!(old.is_some());
    assert!(!handle.stats().await.expect("stats").tun_attached);

    handle.stop().await;
    // Stopped is queued before stop() returns, and ends the events.
    let mut last = None;
    while let Ok(e) = events.try_recv() {
        last = Some(e);
    }
    assert!(
        matches!(last, Some(DriverEvent::Stopped { error: None })),
        "{last:?}"
    );
    assert!(events.recv().await.is_none());
    assert!(handle.is_stopped());
    assert!(matches!(handle.stats().await, Err(DriverError::Stopped)));
}

#[tokio::test]
async fn link_open_error_names_the_url() {
    let link: LinkSpec = "tcp://127.0.0.1:1".parse().expect("url");
    let err = Driver::start(config(), link, None)
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(text.starts_with("link tcp://127.0.0.1:1?len=2: "), "{text}");
    match err {
        DriverError::LinkOpen { url, source } => {
            assert_eq!(url, "tcp://127.0.0.1:1?len=2");
            assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn spawn_reports_a_failed_link_as_stopped() {
    let link: LinkSpec = "tcp://127.0.0.1:1".parse().expect("url");
    let (_handle, mut events) =
        Driver::spawn(&tokio::runtime::Handle::current(), config(), link, None);
    let e = timeout(WAIT, events.recv()).await.expect("in time");
    assert!(
        matches!(
            e,
            Some(DriverEvent::Stopped {
                error: Some(DriverError::LinkOpen { .. })
            })
        ),
        "{e:?}"
    );
    assert!(events.recv().await.is_none());
}

#[tokio::test]
async fn a_tun_fd_that_cannot_be_registered_is_a_tun_error() {
    let (link, _peer) = channel(64);
    let (handle, _events) = Driver::start(config(), link, None).await.expect("start");
    // A regular file cannot be polled by the reactor.
    let file = std::fs::File::open("/proc/self/stat").expect("open");
    let err = handle
        .attach_tun(OwnedFd::from(file))
        .await
        .expect_err("not pollable");
    assert!(matches!(err, DriverError::Tun(_)), "{err:?}");
    handle.stop().await;
}

#[tokio::test]
async fn udp_link_carries_frames_both_ways() {
    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("udp://{}", peer.local_addr().expect("addr"));
    let (handle, _events) = Driver::start(config(), url.parse().expect("url"), None)
        .await
        .expect("start");
    // The static address is announced: a gratuitous ARP arrives as one datagram.
    let mut buf = [0u8; 2048];
    let (n, from) = timeout(WAIT, peer.recv_from(&mut buf))
        .await
        .expect("in time")
        .expect("recv");
    assert_eq!(buf[12..14], [8, 6]);
    assert_eq!(n, 42);
    // An ARP request to it is answered.
    peer.send_to(&arp_request_for_us(), from)
        .await
        .expect("send");
    let reply = timeout(WAIT, async {
        loop {
            let (n, _) = peer.recv_from(&mut buf).await.expect("recv");
            if buf[..6] == PEER_MAC.0 {
                return buf[..n].to_vec();
            }
        }
    })
    .await
    .expect("reply in time");
    assert_eq!(reply[21], 2, "ARP reply opcode");
    handle.stop().await;
}

#[tokio::test]
async fn socket_hook_sees_the_socket_before_connect() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("tcp://{}?len=4", listener.local_addr().expect("addr"));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let mut config = config();
    config.socket_hook = Some(Arc::new(move |fd| {
        seen2.lock().expect("lock").push(fd);
        Ok(())
    }));
    let accept = tokio::spawn(async move { listener.accept().await.expect("accept").0 });
    let (handle, _events) = Driver::start(config, url.parse().expect("url"), None)
        .await
        .expect("start");
    let mut stream = timeout(WAIT, accept).await.expect("in time").expect("join");
    assert_eq!(seen.lock().expect("lock").len(), 1);
    // The gratuitous ARP arrives with a 4-byte length prefix.
    use tokio::io::AsyncReadExt;
    let len = timeout(WAIT, stream.read_u32())
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(len, 42);
    handle.stop().await;
}

#[tokio::test]
async fn tcp_link_reconnects_and_reports_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("tcp://{}", listener.local_addr().expect("addr"));
    let (handle, mut events) = Driver::start(config(), url.parse().expect("url"), None)
        .await
        .expect("start");
    let (first, _) = timeout(WAIT, listener.accept())
        .await
        .expect("in time")
        .expect("accept");
    drop(first);
    // The peer went away: the link reports it down, then reconnects by itself.
    let (error, retry_in) = next_event(&mut events, |e| match e {
        DriverEvent::Link(LinkStatus::Down { error, retry_in }) => Some((error, retry_in)),
        _ => None,
    })
    .await;
    let text = error.to_string();
    assert!(text.starts_with(&format!("link {url}?len=2: ")), "{text}");
    assert!(matches!(error, DriverError::Link { .. }), "{error:?}");
    assert!(retry_in.is_some());
    let (mut second, _) = timeout(WAIT, listener.accept())
        .await
        .expect("in time")
        .expect("accept");
    let up = timeout(WAIT, events.recv()).await.expect("in time");
    assert!(
        matches!(up, Some(DriverEvent::Link(LinkStatus::Up))),
        "{up:?}"
    );
    assert_eq!(handle.stats().await.expect("stats").link_reconnects, 1);
    // Frames flow on the new connection: answer an ARP request sent over it.
    let frame = arp_request_for_us();
    let mut wire = (frame.len() as u16).to_be_bytes().to_vec();
    wire.extend_from_slice(&frame);
    second.write_all(&wire).await.expect("write");
    let reply = timeout(WAIT, async {
        loop {
            let len = second.read_u16().await.expect("length");
            let mut f = vec![0u8; usize::from(len)];
            second.read_exact(&mut f).await.expect("frame");
            if f[..6] == PEER_MAC.0 {
                return f;
            }
        }
    })
    .await
    .expect("reply in time");
    assert_eq!(reply[21], 2, "ARP reply opcode");
    handle.stop().await;
}

/// The Android order: the host runs on the link alone, the TUN comes later.
#[tokio::test]
async fn tun_attached_after_start_gets_traffic() {
    let (link, mut peer) = channel(64);
    let (handle, _events) = Driver::start(config(), link, None).await.expect("start");
    let mut ingress = Vec::new();
    etherparse::PacketBuilder::ethernet2(PEER_MAC.0, OUR_MAC.0)
        .ipv4([192, 0, 2, 1], [192, 0, 2, 123], 64)
        .udp(7, 7)
        .write(&mut ingress, b"early")
        .expect("build");
    peer.to_driver.send(ingress.clone()).await.expect("send");
    // ARP still works without a TUN.
    peer.to_driver
        .send(arp_request_for_us())
        .await
        .expect("send");
    next_frame(&mut peer, |f| f[..6] == PEER_MAC.0 && f[12..14] == [8, 6]).await;
    assert_eq!(handle.stats().await.expect("stats").dropped_no_tun, 1);

    let (tun_ours, tun_kernel) = seqpacket_pair();
    assert!(handle.attach_tun(tun_ours).await.expect("attach").is_none());
    peer.to_driver.send(ingress.clone()).await.expect("send");
    let kernel = PacketFd::new(tun_kernel).expect("register");
    let mut bufs = vec![vec![0u8; 2048]];
    let mut lens = [0usize];
    timeout(WAIT, kernel.read_batch(&mut bufs, 0, &mut lens))
        .await
        .expect("packet in time")
        .expect("read");
    assert_eq!(&bufs[0][..lens[0]], &ingress[14..]);
    handle.stop().await;
}

/// A fd at end of file (a socket whose other end closed) fails as a TUN instead of
/// reading empty "packets" forever.
#[tokio::test]
async fn tun_at_end_of_file_is_detached() {
    let (link, _peer) = channel(64);
    let (tun_ours, tun_kernel) = seqpacket_pair();
    drop(tun_kernel);
    let (handle, mut events) = Driver::start(config(), link, Some(tun_ours))
        .await
        .expect("start");
    let failed = next_event(&mut events, |e| match e {
        DriverEvent::TunFailed(e) => Some(e),
        _ => None,
    })
    .await;
    assert_eq!(failed.kind(), io::ErrorKind::UnexpectedEof);
    assert!(failed.to_string().contains("end of file"), "{failed}");
    let stats = handle.stats().await.expect("stats");
    assert!(!stats.tun_attached);
    assert_eq!(stats.tap.tun.packets_in, 0);
    assert!(stats.wakeups < 100, "{} wake-ups", stats.wakeups);
    handle.stop().await;
}

/// Empty and oversized frames from a channel link are dropped and counted. The frames
/// are taken in order, so once the ARP request sent after them is answered, they have
/// been counted.
#[tokio::test(start_paused = true)]
async fn channel_link_counts_frames_it_drops() {
    let (link, mut peer) = channel(64);
    let (config, _clock) = paused_config();
    let (handle, _events) = Driver::start(config, link, None).await.expect("start");
    peer.to_driver.send(Vec::new()).await.expect("send");
    peer.to_driver
        .send(vec![0; MAX_FRAME + 1])
        .await
        .expect("send");
    peer.to_driver
        .send(arp_request_for_us())
        .await
        .expect("send");
    next_frame(&mut peer, is_arp_reply_to_peer).await;
    let stats = handle.stats().await.expect("stats");
    assert_eq!(stats.tap.arp.requests_in, 1);
    assert_eq!(stats.link_dropped_in, 2);
    assert_eq!(stats.tap.link.frames_in, 1);
    handle.stop().await;
}

/// A TCP peer that accepts but never reads (and keeps writing, as a simpletun-style
/// peer blocked on its own write would have): the driver goes on receiving from it,
/// answering commands and running, drops what the connection cannot take, and stops
/// after giving the queue [`STOP_DEADLINE`] to drain.
#[tokio::test]
async fn tcp_peer_that_never_reads_does_not_stall_the_driver() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::AsyncWriteExt;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    // A small receive buffer (inherited by the accepted socket) fills sooner.
    sys::set_int_option(listener.as_raw_fd(), libc::SO_RCVBUF, 4096).expect("SO_RCVBUF");
    let url = format!("tcp://{}", listener.local_addr().expect("addr"));
    let (tun_ours, tun_kernel) = seqpacket_pair();
    let (handle, _events) = Driver::start(config(), url.parse().expect("url"), Some(tun_ours))
        .await
        .expect("start");
    let (mut peer, _) = timeout(WAIT, listener.accept())
        .await
        .expect("in time")
        .expect("accept");

    // Apps flood the TUN with broadcasts (each one a frame for the link) until the
    // driver stops taking them: the connection and the driver's queue are full.
    let stop_flood = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop_flood = stop_flood.clone();
        std::thread::spawn(move || {
            let fd = tun_kernel;
            sys::set_nonblocking(&fd).expect("non-blocking");
            let packet = broadcast_udp_from_us(&[0u8; 1400]);
            let mut written = 0u64;
            while !stop_flood.load(Ordering::Relaxed) {
                if write_packet(&fd, &packet).is_ok() {
                    written += 1;
                } else {
                    std::thread::yield_now();
                }
            }
            written
        })
    };
    // The driver stops reading the TUN once this much is queued for the link.
    let congested = wait_for_stats(&handle, true, |s| {
        s.link_queued >= super::link::TCP_OUT_PAUSE as u64
    })
    .await;
    let taken = congested.tap.tun.packets_in;
    assert!(taken > 0);

    // The peer writes to us (without reading): the driver still receives, and drops the
    // replies it cannot queue.
    let frame = arp_request_for_us();
    let requests = 8000u64;
    let mut wire = Vec::new();
    for _ in 0..requests {
        wire.extend_from_slice(&(frame.len() as u16).to_be_bytes());
        wire.extend_from_slice(&frame);
    }
    timeout(WAIT, peer.write_all(&wire))
        .await
        .expect("the driver reads from the link")
        .expect("write");
    let stats = wait_for_stats(&handle, false, |s| s.tap.arp.requests_in == requests).await;
    assert!(stats.link_dropped_out > 0, "{stats:?}");
    assert!(stats.link_queued as usize <= super::link::TCP_OUT_LIMIT);

    // The stop gives what is queued STOP_DEADLINE to drain, on tokio's clock (paused
    // from here: it advances only while every task waits), then ends regardless.
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    timeout(STOP_DEADLINE + Duration::from_secs(2), handle.stop())
        .await
        .expect("stop in bounded time");
    assert!(handle.is_stopped());
    assert!(
        started.elapsed() >= STOP_DEADLINE,
        "the queue was given a chance"
    );
    stop_flood.store(true, Ordering::Relaxed);
    assert!(flood.join().expect("flood thread") >= taken);
    drop(peer);
}

/// Apps flooding the TUN faster than the driver reads it must not starve the link
/// (ARP requests are answered) nor the timers (the second announcement, a timer 2 s
/// after the first, comes: the sleep branch is never the one selected under this load).
#[tokio::test]
async fn tun_flood_starves_neither_link_nor_timers() {
    use std::sync::atomic::{AtomicBool, Ordering};

    let (link, mut peer) = channel(1024);
    let (tun_ours, tun_kernel) = seqpacket_pair();
    let stop_flood = Arc::new(AtomicBool::new(false));
    // Garbage the emulated host drops at once: the driver's time goes to reading it.
    let flood = {
        let stop_flood = stop_flood.clone();
        std::thread::spawn(move || {
            let junk = [0u8; 20];
            while !stop_flood.load(Ordering::Relaxed) {
                // Blocking writes: the socket is refilled as soon as it has room.
                let _ = write_packet(&tun_kernel, &junk);
            }
        })
    };
    // One packet per wake-up: the writer keeps the TUN readable at every turn.
    let config = DriverConfig {
        batch: 1,
        ..config()
    };
    let (handle, _events) = Driver::start(config, link, Some(tun_ours))
        .await
        .expect("start");
    let mut announcements = 0;
    for _ in 0..5 {
        peer.to_driver
            .send(arp_request_for_us())
            .await
            .expect("send");
        let reply = timeout(WAIT, async {
            loop {
                let f = peer.from_driver.recv().await.expect("driver alive");
                if is_announcement(&f) {
                    announcements += 1;
                } else if is_arp_reply_to_peer(&f) {
                    return f;
                }
            }
        })
        .await
        .expect("ARP answered while the TUN is flooded");
        assert_eq!(reply[6..12], OUR_MAC.0);
    }
    timeout(WAIT, async {
        while announcements < 2 {
            let f = peer.from_driver.recv().await.expect("driver alive");
            if is_announcement(&f) {
                announcements += 1;
            }
        }
    })
    .await
    .expect("both announcements while the TUN is flooded");
    let stats = timeout(WAIT, handle.stats())
        .await
        .expect("stats answered")
        .expect("stats");
    assert!(stats.tap.drops_total() > 1000, "{stats:?}");
    stop_flood.store(true, Ordering::Relaxed);
    handle.stop().await;
    // The driver closed its end: the writer's next write fails and it sees the flag.
    flood.join().expect("flood thread");
}
