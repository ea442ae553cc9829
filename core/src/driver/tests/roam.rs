//! Keeping the emulated host's place on the LAN through a phone's life: dead TCP paths
//! noticed by the kernel, datagram sockets reopened when their route goes, a change of
//! network (sockets reopened, lease kept, the host re-announced), the next timer for an
//! alarm, a stop that keeps the lease, and the idle wake-up rate.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

use dhcproto::v4::MessageType;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::server::{spawn_dhcp_server, Received, OFFERED};
use super::*;
use crate::{DhcpConfig, DhcpEvent, Lease};

/// A config whose socket hook records every fd it is shown.
fn hooked(config: DriverConfig) -> (DriverConfig, Arc<Mutex<Vec<i32>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let config = DriverConfig {
        socket_hook: Some(Arc::new(move |fd| {
            record.lock().expect("lock").push(fd);
            Ok(())
        })),
        ..config
    };
    (config, seen)
}

fn dhcp(config: DriverConfig) -> DriverConfig {
    let mut config = config;
    config.tap.ipv4 = Ipv4Mode::Dhcp(DhcpConfig {
        probe: false,
        ..DhcpConfig::default()
    });
    config
}

async fn lease_acquired(events: &mut DriverEvents) -> Lease {
    next_event(events, |e| match e {
        DriverEvent::Tap(Event::Dhcp(DhcpEvent::LeaseAcquired(lease))) => Some(lease),
        _ => None,
    })
    .await
}

/// Polls `cond` every 10 ms until it holds, within [`WAIT`].
async fn until(what: &str, cond: impl Fn() -> bool) {
    let waited = timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what} within {WAIT:?}");
}

/// A UDP peer on 127.0.0.1 that answers the latest source address it heard from (as
/// OpenVPN and SoftEther servers do): frames it receives go to the scripted DHCP server
/// and, as copies, to the test; the server's answers go back to the latest source.
struct UdpPeer {
    addr: SocketAddr,
    frames: mpsc::UnboundedReceiver<Vec<u8>>,
    dhcp: mpsc::UnboundedReceiver<Received>,
}

async fn udp_peer(lease_secs: u32) -> UdpPeer {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let (copies, frames) = mpsc::unbounded_channel();
    let (to_server, server_in) = mpsc::channel(64);
    let (server_out, mut from_server) = mpsc::channel::<Vec<u8>>(64);
    let dhcp = spawn_dhcp_server(server_in, server_out, lease_secs);
    tokio::spawn(async move {
        let mut latest: Option<SocketAddr> = None;
        let mut buf = vec![0u8; 2048];
        loop {
            tokio::select! {
                r = socket.recv_from(&mut buf) => {
                    let Ok((n, from)) = r else { continue };
                    latest = Some(from);
                    let _ = copies.send(buf[..n].to_vec());
                    if to_server.send(buf[..n].to_vec()).await.is_err() {
                        return;
                    }
                }
                frame = from_server.recv() => {
                    let Some(frame) = frame else { return };
                    if let Some(to) = latest {
                        let _ = socket.send_to(&frame, to).await;
                    }
                }
            }
        }
    });
    UdpPeer { addr, frames, dhcp }
}

/// A gratuitous ARP for `ip`: broadcast, sender and target address both `ip`.
fn is_gratuitous_arp_for(f: &[u8], ip: Ipv4Addr) -> bool {
    is_announcement(f) && f[28..32] == ip.octets()
}

#[tokio::test]
async fn tcp_link_sockets_have_keepalive_and_a_user_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("tcp://{}", listener.local_addr().expect("addr"));
    let (config, seen) = hooked(DriverConfig {
        tcp_user_timeout: Duration::from_millis(1500),
        ..config()
    });
    let (handle, _events) = Driver::start(config, url.parse().expect("url"), None)
        .await
        .expect("start");
    let (_first, _) = timeout(WAIT, listener.accept())
        .await
        .expect("in time")
        .expect("accept");
    let check = |fd: i32, user_timeout_ms: i32| {
        let get = |level, option| sys::get_option(fd, level, option).expect("getsockopt");
        assert_eq!(get(libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1, "keepalive");
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 5);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL), 2);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPCNT), 3);
        assert_eq!(
            get(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
            user_timeout_ms
        );
    };
    let first = *seen.lock().expect("lock").last().expect("a socket shown");
    check(first, 1500);

    // A change of network: a new connection, shown to the hook, with the same options.
    handle.network_changed().await.expect("network changed");
    let (_second, _) = timeout(WAIT, listener.accept())
        .await
        .expect("reconnected in time")
        .expect("accept");
    until("the new socket shown", || {
        seen.lock().expect("lock").len() == 2
    })
    .await;
    let shown = seen.lock().expect("lock").clone();
    assert_eq!(shown.len(), 2, "the new socket is shown to the hook");
    check(shown[1], 1500);
    handle.stop().await;

    // The URL's own user timeout wins over the config's.
    let (config, seen) = hooked(super::config());
    let url = format!("{url}?user_timeout_ms=2500");
    let (handle, _events) = Driver::start(config, url.parse().expect("url"), None)
        .await
        .expect("start");
    let (_third, _) = timeout(WAIT, listener.accept())
        .await
        .expect("in time")
        .expect("accept");
    let fd = *seen.lock().expect("lock").last().expect("a socket shown");
    check(fd, 2500);
    handle.stop().await;
}

#[tokio::test]
async fn a_lost_route_reopens_the_datagram_socket() {
    let peer = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("udp://{}", peer.local_addr().expect("addr"));
    let fault = Arc::new(AtomicI32::new(0));
    let (config, seen) = hooked(DriverConfig {
        send_fault: Some(fault.clone()),
        ..config()
    });
    let (tun_ours, tun_kernel) = seqpacket_pair();
    let (handle, mut events) = Driver::start(config, url.parse().expect("url"), Some(tun_ours))
        .await
        .expect("start");
    let mut buf = [0u8; 2048];
    let (_, from) = timeout(WAIT, peer.recv_from(&mut buf))
        .await
        .expect("announcement in time")
        .expect("recv");

    // The route goes: the ARP reply cannot be sent.
    fault.store(libc::ENETUNREACH, Ordering::Relaxed);
    peer.send_to(&arp_request_for_us(), from)
        .await
        .expect("send");
    let (error, retry_in) = next_event(&mut events, |e| match e {
        DriverEvent::Link(LinkStatus::Down { error, retry_in }) => Some((error, retry_in)),
        _ => None,
    })
    .await;
    let DriverError::Link { source, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(source.raw_os_error(), Some(libc::ENETUNREACH), "{error}");
    assert!(retry_in.is_some());
    assert!(handle.stats().await.expect("stats").link_dropped_out >= 1);

    // The route is back: after the backoff a new socket is opened (shown to the hook).
    fault.store(0, Ordering::Relaxed);
    until("a new socket", || seen.lock().expect("lock").len() == 2).await;
    // The link is up once the new socket carries a frame: a broadcast from the TUN.
    let packet = broadcast_udp_from_us(b"after the roam");
    write_packet(&tun_kernel, &packet).expect("write");
    next_event(&mut events, |e| {
        matches!(e, DriverEvent::Link(LinkStatus::Up)).then_some(())
    })
    .await;
    // Frames flow both ways again, from the new socket.
    let new_from = timeout(WAIT, async {
        loop {
            let (n, from) = peer.recv_from(&mut buf).await.expect("recv");
            if buf[..n].ends_with(b"after the roam") {
                return from;
            }
        }
    })
    .await
    .expect("the TUN's packet in time");
    assert_ne!(new_from, from, "a new socket, a new port");
    // Back up after a loss of route, the host re-announces itself, as after a flap.
    timeout(WAIT, async {
        loop {
            let (n, from) = peer.recv_from(&mut buf).await.expect("recv");
            if from == new_from && is_announcement(&buf[..n]) {
                return;
            }
        }
    })
    .await
    .expect("a gratuitous ARP once the link is up again");
    peer.send_to(&arp_request_for_us(), new_from)
        .await
        .expect("send");
    timeout(WAIT, async {
        loop {
            let (n, _) = peer.recv_from(&mut buf).await.expect("recv");
            if is_arp_reply_to_peer(&buf[..n]) {
                return;
            }
        }
    })
    .await
    .expect("the ARP request answered on the new socket");
    handle.stop().await;
}

#[tokio::test]
async fn network_changed_reopens_keeps_the_lease_and_re_announces() {
    let mut peer = udp_peer(3600).await;
    let url = format!("udp://{}", peer.addr);
    let (config, seen) = hooked(dhcp(config()));
    let (handle, mut events) = Driver::start(config, url.parse().expect("url"), None)
        .await
        .expect("start");
    let lease = lease_acquired(&mut events).await;
    assert_eq!(lease.address, OFFERED);
    // The announcements after the lease are done.
    timeout(WAIT, async {
        let mut announcements = 0;
        while announcements < 2 {
            let f = peer.frames.recv().await.expect("peer alive");
            announcements += usize::from(is_gratuitous_arp_for(&f, OFFERED));
        }
    })
    .await
    .expect("two announcements");
    while peer.dhcp.try_recv().is_ok() {}
    while peer.frames.try_recv().is_ok() {}
    assert_eq!(seen.lock().expect("lock").len(), 1);
    let dropped = handle.stats().await.expect("stats").link_dropped_out;

    handle.network_changed().await.expect("network changed");
    until("the socket reopened", || {
        seen.lock().expect("lock").len() == 2
    })
    .await;
    // Re-announced on the new socket: a gratuitous ARP for the leased address ...
    timeout(WAIT, async {
        loop {
            let f = peer.frames.recv().await.expect("peer alive");
            if is_gratuitous_arp_for(&f, OFFERED) {
                return;
            }
        }
    })
    .await
    .expect("a gratuitous ARP after the change");
    // ... and the lease confirmed by an INIT-REBOOT request: broadcast, no ciaddr, the
    // address asked for in option 50.
    let request = timeout(WAIT, peer.dhcp.recv())
        .await
        .expect("a REQUEST in time")
        .expect("server alive");
    assert_eq!(request.kind, MessageType::Request);
    assert_eq!(request.ip_dst, Ipv4Addr::BROADCAST);
    assert_eq!(request.ciaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(request.requested, Some(OFFERED));
    // Acknowledged: the same lease, renewed, never lost nor changed.
    let renewed = next_event(&mut events, |e| match e {
        DriverEvent::Tap(Event::Dhcp(DhcpEvent::LeaseRenewed(lease))) => Some(Ok(lease)),
        DriverEvent::Tap(Event::Dhcp(other)) => Some(Err(other)),
        _ => None,
    })
    .await
    .expect("renewed, not lost nor changed");
    assert_eq!(renewed.address, lease.address);
    let stats = handle.stats().await.expect("stats");
    assert_eq!(stats.lease.map(|l| l.address), Some(lease.address));
    // The re-announcement waited for the new socket: nothing was lost to the reopening.
    assert_eq!(stats.link_dropped_out, dropped);
    assert!(
        peer.dhcp.try_recv().is_err(),
        "no DISCOVER after the change"
    );
    handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn next_timer_is_the_leases_t1_on_boot_time() {
    let (link, peer) = channel(64);
    let (config, clock) = paused_config();
    let (handle, mut events) = Driver::start(dhcp(config), link, None)
        .await
        .expect("start");
    let mut dhcp = spawn_dhcp_server(peer.from_driver, peer.to_driver, 4 * 3600);
    let lease = lease_acquired(&mut events).await;
    let acquired = clock.boottime();
    // Once the announcements are done, the next timer is T1 (two hours).
    tokio::time::sleep(Duration::from_secs(10)).await;
    let next = handle
        .next_timer()
        .await
        .expect("next timer")
        .expect("a timer");
    assert_eq!(next.reason, "dhcp renew (T1)");
    let t1 = lease.t1.expect("T1");
    assert_eq!(t1, Duration::from_secs(2 * 3600));
    assert_eq!(next.boottime, acquired + t1);
    assert_eq!(next.boottime_nanos(), (acquired + t1).as_nanos() as u64);

    // The device sleeps through T1; the alarm fires; poke() sends the renewal at once.
    while dhcp.try_recv().is_ok() {}
    clock.suspend(next.boottime - clock.boottime() + Duration::from_secs(1));
    let woke = tokio::time::Instant::now();
    handle.poke().await.expect("poke");
    let request = timeout(WAIT, dhcp.recv())
        .await
        .expect("a REQUEST at once")
        .expect("server alive");
    assert_eq!(request.kind, MessageType::Request);
    assert_eq!(request.at, woke);
    handle.stop().await;
}

/// Stops after a lease, keeping it or not, and returns what the server heard after it.
async fn dhcp_after_stop(release: bool) -> Vec<MessageType> {
    let (link, peer) = channel(64);
    let (config, _clock) = paused_config();
    let (handle, mut events) = Driver::start(dhcp(config), link, None)
        .await
        .expect("start");
    let mut dhcp = spawn_dhcp_server(peer.from_driver, peer.to_driver, 3600);
    lease_acquired(&mut events).await;
    while dhcp.try_recv().is_ok() {}
    if release {
        handle.stop().await;
    } else {
        handle.stop_keep_lease().await;
    }
    // The server ends with the driver's side of the channel.
    let mut heard = Vec::new();
    while let Some(r) = timeout(WAIT, dhcp.recv()).await.expect("server ends") {
        heard.push(r.kind);
    }
    heard
}

#[tokio::test(start_paused = true)]
async fn stop_keep_lease_sends_no_release() {
    assert_eq!(dhcp_after_stop(true).await, [MessageType::Release]);
    assert_eq!(dhcp_after_stop(false).await, []);
}

/// Wake-ups of a driver holding a lease of `lease_secs`, over one idle hour on the
/// simulated clock, IPv4 and IPv6 on.
async fn idle_hour_wakeups_with(lease_secs: u32) -> u64 {
    let (link, peer) = channel(64);
    let (config, _clock) = paused_config();
    let mut config = dhcp(config);
    config.tap.ipv6 = crate::Ipv6Mode::default();
    let (handle, mut events) = Driver::start(config, link, None).await.expect("start");
    let _dhcp = spawn_dhcp_server(peer.from_driver, peer.to_driver, lease_secs);
    lease_acquired(&mut events).await;
    // Past the announcements, DAD and router solicitations.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let before = handle.stats().await.expect("stats").wakeups;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let after = handle.stats().await.expect("stats").wakeups;
    handle.stop().await;
    // The second stats command is a wake-up of its own.
    after - before - 1
}

/// Idle wake-ups per hour (BENCHMARKS.md, "Roaming and restart"): none with a lease
/// that outlasts the hour, 11 for one renewal (the timer, the server's ARP reply and
/// ACK, the timers of the server's neighbour entry), as before the re-announcement on
/// link up and after a network change existed.
#[tokio::test(start_paused = true)]
async fn idle_hour_wakeups() {
    let long = idle_hour_wakeups_with(24 * 3600).await;
    let hourly = idle_hour_wakeups_with(3600).await;
    println!("idle wake-ups per hour: 24 h lease {long}, 1 h lease (one renewal) {hourly}");
    assert_eq!(long, 0);
    assert!(hourly <= 11, "{hourly} wake-ups in an idle hour");
}

#[tokio::test]
async fn network_changed_resolves_the_name_again() {
    let peer = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = peer.local_addr().expect("addr");
    let asked = Arc::new(Mutex::new(Vec::new()));
    let record = asked.clone();
    let config = DriverConfig {
        resolver: Some(Arc::new(move |host: &str, port: u16| {
            record.lock().expect("lock").push((host.to_owned(), port));
            Ok(vec![addr])
        })),
        ..config()
    };
    let url = format!("udp://lan-server.example:{}", addr.port());
    let (handle, _events) = Driver::start(config, url.parse().expect("url"), None)
        .await
        .expect("start");
    let mut buf = [0u8; 2048];
    let (_, first) = timeout(WAIT, peer.recv_from(&mut buf))
        .await
        .expect("announcement in time")
        .expect("recv");
    assert_eq!(asked.lock().expect("lock").len(), 1);
    handle.network_changed().await.expect("network changed");
    until("the name resolved again", || {
        asked.lock().expect("lock").len() == 2
    })
    .await;
    assert_eq!(
        asked.lock().expect("lock")[1],
        ("lan-server.example".to_owned(), addr.port())
    );
    // The re-announcement reaches the peer through the socket opened for the new lookup.
    timeout(WAIT, async {
        loop {
            let (n, from) = peer.recv_from(&mut buf).await.expect("recv");
            if from != first && is_announcement(&buf[..n]) {
                return;
            }
        }
    })
    .await
    .expect("a gratuitous ARP after the change");
    handle.stop().await;
}
