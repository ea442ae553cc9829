//! The `fd://` link through the whole driver: an engine on the other end of
//! [`frame_socket_pair`] gets ARP answers and the TUN's traffic, one frame per datagram,
//! and its frames reach the TUN.

use super::*;

/// Reads the next datagram from the engine's end matching `pred`, within [`WAIT`].
async fn next_datagram(engine: &PacketFd, pred: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    timeout(WAIT, async {
        let mut bufs = vec![vec![0u8; MAX_FRAME]; 8];
        let mut lens = [0usize; 8];
        loop {
            let n = engine
                .read_batch(&mut bufs, 0, &mut lens)
                .await
                .expect("read");
            for (buf, len) in bufs.iter().zip(lens).take(n) {
                if pred(&buf[..len]) {
                    return buf[..len].to_vec();
                }
            }
        }
    })
    .await
    .expect("datagram in time")
}

#[tokio::test]
async fn an_engine_on_a_socket_pair_exchanges_frames_with_the_tun() {
    let (ours, theirs) = frame_socket_pair().expect("pair");
    let (tun_ours, tun_kernel) = seqpacket_pair();
    let (handle, _events) = Driver::start(config(), LinkSpec::fd(ours), Some(tun_ours))
        .await
        .expect("start");
    let engine = PacketFd::new(theirs).expect("engine end");

    engine.write(&arp_request_for_us()).expect("write");
    let reply = next_datagram(&engine, is_arp_reply_to_peer).await;
    assert_eq!(reply[6..12], OUR_MAC.0);

    // TUN → engine.
    let packet = broadcast_udp_from_us(b"to the engine");
    write_packet(&tun_kernel, &packet).expect("write");
    let frame = next_datagram(&engine, |f| f[..6] == [0xff; 6] && f[12..14] == [8, 0]).await;
    assert_eq!(&frame[14..], &packet[..]);

    // Engine → TUN.
    let mut ingress = Vec::new();
    etherparse::PacketBuilder::ethernet2(PEER_MAC.0, OUR_MAC.0)
        .ipv4([192, 0, 2, 1], [192, 0, 2, 123], 64)
        .udp(7, 7)
        .write(&mut ingress, b"from the engine")
        .expect("build");
    engine.write(&ingress).expect("write");
    let kernel = PacketFd::new(tun_kernel).expect("register");
    let mut bufs = vec![vec![0u8; 2048]];
    let mut lens = [0usize];
    timeout(WAIT, kernel.read_batch(&mut bufs, 0, &mut lens))
        .await
        .expect("packet in time")
        .expect("read");
    assert_eq!(&bufs[0][..lens[0]], &ingress[14..]);

    let stats = handle.stats().await.expect("stats");
    assert!(stats.link.starts_with("fd://"), "{}", stats.link);
    assert_eq!(stats.link_dropped_out, 0);
    handle.stop().await;
}

#[tokio::test]
async fn an_fd_url_that_is_not_open_fails_to_start_naming_it() {
    let link: LinkSpec = "fd://1048576".parse().expect("url");
    let err = Driver::start(config(), link, None)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("fd://1048576"), "{err}");
}
