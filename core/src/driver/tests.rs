//! Driver tests without privileges: a channel link and a `SOCK_SEQPACKET` socket pair
//! standing in for the TUN fd (one packet per read, like a TUN).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::time::timeout;

use super::*;
use crate::arp::ArpPacket;
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
    assert!(matches!(up, DriverEvent::Tap(Event::Ipv4Up(_))), "{up:?}");

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
    assert_eq!(stats.tap.tun_packets_in, 1);
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
