//! Driver tests without privileges: a channel link and a `SOCK_SEQPACKET` socket pair
//! standing in for the TUN fd (one packet per read, like a TUN).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::time::timeout;

use super::*;
use crate::wire::arp::ArpPacket;
use crate::{Event, Ipv4Event};
use crate::{Ipv4Interface, Ipv4Mode, MacAddr};

const WAIT: Duration = Duration::from_secs(5);
const PEER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two fds into the array.
    let rc = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "socketpair: {}", io::Error::last_os_error());
    // SAFETY: fresh fds owned by nothing else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn config() -> DriverConfig {
    let iface = Ipv4Interface::new([192, 0, 2, 123].into(), 24, Some([192, 0, 2, 1].into()));
    DriverConfig {
        tap: Config {
            mac: Some(MacAddr([0x02, 0, 0, 0, 0, 0x7b])),
            ipv4: Ipv4Mode::Static(iface),
            ipv6: crate::Ipv6Mode::Disabled,
            ..Config::default()
        },
        ..DriverConfig::default()
    }
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
    let request = ArpPacket::request(PEER_MAC, [192, 0, 2, 1].into(), [192, 0, 2, 123].into());
    peer.to_driver
        .send(request.to_frame(MacAddr::BROADCAST))
        .await
        .expect("send");
    let reply = next_frame(&mut peer, |f| f[..6] == PEER_MAC.0 && f[12..14] == [8, 6]).await;
    assert_eq!(reply[6..12], [0x02, 0, 0, 0, 0, 0x7b]);

    // TUN → link: a broadcast UDP packet comes out as a frame.
    let mut packet = Vec::new();
    etherparse::PacketBuilder::ipv4([192, 0, 2, 123], [255, 255, 255, 255], 64)
        .udp(5000, 5000)
        .write(&mut packet, b"hello")
        .expect("build");
    // SAFETY: writing a valid buffer to an fd we own.
    let n = unsafe { libc::write(tun_kernel.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
    assert_eq!(n, packet.len() as isize);
    let frame = next_frame(&mut peer, |f| f[..6] == [0xff; 6] && f[12..14] == [8, 0]).await;
    assert_eq!(&frame[14..], &packet[..]);

    // Link → TUN: a unicast IP packet for us comes out of the TUN, header stripped.
    let mut ingress = Vec::new();
    etherparse::PacketBuilder::ethernet2(PEER_MAC.0, [0x02, 0, 0, 0, 0, 0x7b])
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
    let last = timeout(WAIT, async {
        let mut last = None;
        while let Some(e) = events.recv().await {
            last = Some(e);
        }
        last
    })
    .await
    .expect("events end");
    assert_eq!(last, Some(DriverEvent::Stopped { error: None }));
    assert!(handle.stats().await.is_err());
}

#[tokio::test]
async fn link_open_error_names_the_url() {
    let link: LinkSpec = "tcp://127.0.0.1:1".parse().expect("url");
    let err = Driver::start(config(), link, None)
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(text.starts_with("link tcp://127.0.0.1:1?len=2: "), "{text}");
}

#[tokio::test]
async fn spawn_reports_a_failed_link_as_stopped() {
    let link: LinkSpec = "tcp://127.0.0.1:1".parse().expect("url");
    let (_handle, mut events) =
        Driver::spawn(&tokio::runtime::Handle::current(), config(), link, None);
    let e = timeout(WAIT, events.recv()).await.expect("in time");
    assert!(
        matches!(e, Some(DriverEvent::Stopped { error: Some(_) })),
        "{e:?}"
    );
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
    let request = ArpPacket::request(PEER_MAC, [192, 0, 2, 1].into(), [192, 0, 2, 123].into());
    peer.send_to(&request.to_frame(MacAddr::BROADCAST), from)
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
    use tokio::io::AsyncReadExt;
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
    let down = timeout(WAIT, async {
        loop {
            match events.recv().await.expect("driver alive") {
                DriverEvent::Link(LinkStatus::Down { error, retry_in }) => {
                    return (error, retry_in)
                }
                _ => continue,
            }
        }
    })
    .await
    .expect("down in time");
    assert!(
        down.0.starts_with(&format!("link {url}?len=2: ")),
        "{}",
        down.0
    );
    assert!(down.1.is_some());
    let (mut second, _) = timeout(WAIT, listener.accept())
        .await
        .expect("in time")
        .expect("accept");
    let up = timeout(WAIT, events.recv()).await.expect("in time");
    assert_eq!(up, Some(DriverEvent::Link(LinkStatus::Up)));
    assert_eq!(handle.stats().await.expect("stats").link_reconnects, 1);
    // Frames flow on the new connection: answer an ARP request sent over it.
    let request = ArpPacket::request(PEER_MAC, [192, 0, 2, 1].into(), [192, 0, 2, 123].into());
    let frame = request.to_frame(MacAddr::BROADCAST);
    use tokio::io::AsyncWriteExt;
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
    etherparse::PacketBuilder::ethernet2(PEER_MAC.0, [0x02, 0, 0, 0, 0, 0x7b])
        .ipv4([192, 0, 2, 1], [192, 0, 2, 123], 64)
        .udp(7, 7)
        .write(&mut ingress, b"early")
        .expect("build");
    peer.to_driver.send(ingress.clone()).await.expect("send");
    // ARP still works without a TUN.
    let request = ArpPacket::request(PEER_MAC, [192, 0, 2, 1].into(), [192, 0, 2, 123].into());
    peer.to_driver
        .send(request.to_frame(MacAddr::BROADCAST))
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

fn write_packet(fd: &OwnedFd, packet: &[u8]) -> io::Result<()> {
    // SAFETY: writing a valid buffer to an fd we own.
    let n = unsafe { libc::write(fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn is_arp_reply_to_peer(f: &[u8]) -> bool {
    f.len() >= 22 && f[..6] == PEER_MAC.0 && f[12..14] == [8, 6] && f[21] == 2
}

/// A gratuitous ARP (RFC 5227 announcement) for our static address.
fn is_announcement(f: &[u8]) -> bool {
    f.len() >= 42 && f[..6] == [0xff; 6] && f[12..14] == [8, 6] && f[28..32] == f[38..42]
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
    let failed = timeout(WAIT, async {
        loop {
            match events.recv().await.expect("driver alive") {
                DriverEvent::TunFailed(e) => return e,
                _ => continue,
            }
        }
    })
    .await
    .expect("TunFailed in time");
    assert!(failed.contains("end of file"), "{failed}");
    let stats = handle.stats().await.expect("stats");
    assert!(!stats.tun_attached);
    assert_eq!(stats.tap.tun.packets_in, 0);
    assert!(stats.wakeups < 100, "{} wake-ups", stats.wakeups);
    handle.stop().await;
}

/// Empty and oversized frames from a channel link are dropped and counted.
#[tokio::test]
async fn channel_link_counts_frames_it_drops() {
    let (link, peer) = channel(64);
    let (handle, _events) = Driver::start(config(), link, None).await.expect("start");
    peer.to_driver.send(Vec::new()).await.expect("send");
    peer.to_driver
        .send(vec![0; MAX_FRAME + 1])
        .await
        .expect("send");
    let request = ArpPacket::request(PEER_MAC, [192, 0, 2, 1].into(), [192, 0, 2, 123].into());
    peer.to_driver
        .send(request.to_frame(MacAddr::BROADCAST))
        .await
        .expect("send");
    let stats = timeout(WAIT, async {
        loop {
            let stats = handle.stats().await.expect("stats");
            if stats.tap.arp.requests_in == 1 {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("in time");
    assert_eq!(stats.link_dropped_in, 2);
    assert_eq!(stats.tap.link.frames_in, 1);
    handle.stop().await;
}

/// A TCP peer that accepts but never reads (and keeps writing, as a simpletun-style
/// peer blocked on its own write would have): the driver goes on receiving from it,
/// answering commands and running, drops what the connection cannot take, and stops
/// within a bounded time.
#[tokio::test]
async fn tcp_peer_that_never_reads_does_not_stall_the_driver() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::AsyncWriteExt;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    // A small receive buffer (inherited by the accepted socket) fills sooner.
    let size: libc::c_int = 4096;
    // SAFETY: setsockopt reads one c_int from a valid pointer.
    unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
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
            // SAFETY: fcntl on an fd we own, with integer arguments only.
            unsafe {
                let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
                libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
            let mut packet = Vec::new();
            etherparse::PacketBuilder::ipv4([192, 0, 2, 123], [255, 255, 255, 255], 64)
                .udp(5000, 5000)
                .write(&mut packet, &[0u8; 1400])
                .expect("build");
            let mut written = 0u64;
            while !stop_flood.load(Ordering::Relaxed) {
                if write_packet(&fd, &packet).is_ok() {
                    written += 1;
                } else {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            written
        })
    };
    // Wait until the driver has stopped reading the TUN.
    let taken = timeout(Duration::from_secs(20), async {
        let mut last = u64::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = timeout(Duration::from_secs(1), handle.stats())
                .await
                .expect("stats answered while the link is stuck")
                .expect("stats")
                .tap
                .tun
                .packets_in;
            if now == last {
                return now;
            }
            last = now;
        }
    })
    .await
    .expect("the TUN backs up");
    assert!(taken > 0);

    // The peer writes to us (without reading): the driver still receives, and drops the
    // replies it cannot queue.
    let request = ArpPacket::request(PEER_MAC, [192, 0, 2, 1].into(), [192, 0, 2, 123].into());
    let frame = request.to_frame(MacAddr::BROADCAST);
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
    let stats = timeout(WAIT, async {
        loop {
            let stats = timeout(Duration::from_secs(1), handle.stats())
                .await
                .expect("stats answered")
                .expect("stats");
            if stats.tap.arp.requests_in == requests {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("every request received");
    assert!(stats.link_dropped_out > 0, "{stats:?}");

    let started = std::time::Instant::now();
    timeout(STOP_DEADLINE + Duration::from_secs(2), handle.stop())
        .await
        .expect("stop in bounded time");
    assert!(handle.is_stopped());
    assert!(
        started.elapsed() >= STOP_DEADLINE / 2,
        "the queue was given a chance"
    );
    stop_flood.store(true, Ordering::Relaxed);
    assert!(flood.join().expect("flood thread") >= taken);
    drop(peer);
}

/// Apps flooding the TUN faster than the driver reads it must not starve the link
/// (ARP requests are answered) nor the timers (the second announcement is on time).
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
    let started = std::time::Instant::now();
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
        let request = ArpPacket::request(PEER_MAC, [192, 0, 2, 1].into(), [192, 0, 2, 123].into());
        peer.to_driver
            .send(request.to_frame(MacAddr::BROADCAST))
            .await
            .expect("send");
        let reply = timeout(Duration::from_secs(2), async {
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
        assert_eq!(reply[6..12], [0x02, 0, 0, 0, 0, 0x7b]);
    }
    // The second announcement is a timer 2 s after the first.
    timeout(Duration::from_secs(5), async {
        while announcements < 2 {
            let f = peer.from_driver.recv().await.expect("driver alive");
            if is_announcement(&f) {
                announcements += 1;
            }
        }
    })
    .await
    .expect("both announcements while the TUN is flooded");
    assert!(started.elapsed() < Duration::from_secs(6));
    let stats = timeout(Duration::from_secs(1), handle.stats())
        .await
        .expect("stats answered")
        .expect("stats");
    assert!(stats.tap.drops_total() > 1000, "{stats:?}");
    stop_flood.store(true, Ordering::Relaxed);
    handle.stop().await;
    // The driver closed its end: the writer's next write fails and it sees the flag.
    flood.join().expect("flood thread");
}
