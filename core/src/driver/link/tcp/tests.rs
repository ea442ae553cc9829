use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

use super::*;
use crate::driver::link::LinkStatus;

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn tcp_queue_prefixes_frames_and_drops_past_its_limit() {
    let mut out = TcpOut::default();
    assert!(out.push(LengthPrefix::U16, b"abc"));
    assert!(out.push(LengthPrefix::U32, b"de"));
    assert_eq!(out.buf, b"\x00\x03abc\x00\x00\x00\x02de");
    assert!(
        !out.push(LengthPrefix::U16, &vec![0; 65536]),
        "over a 2-byte prefix"
    );
    // Written bytes are reclaimed when a frame is queued once they outweigh the rest.
    out.head = 7;
    assert!(out.push(LengthPrefix::U16, b"f"));
    assert_eq!(out.buf, b"\x00\x02de\x00\x01f");
    assert_eq!((out.head, out.len()), (0, 7));
    let frame = vec![0; 1500];
    let mut queued = 1;
    while out.push(LengthPrefix::U16, &frame) {
        queued += 1;
    }
    assert!(out.len() <= TCP_OUT_LIMIT);
    assert!(out.len() + 1502 > TCP_OUT_LIMIT);
    assert_eq!(queued, 1 + (TCP_OUT_LIMIT - 7) / 1502);
    assert!(
        out.push(LengthPrefix::U16, b""),
        "room for the smallest frame"
    );
}

fn state() -> LinkState {
    LinkState {
        url: "tcp://test".into(),
        status: Vec::new(),
        dropped_out: 0,
        reconnects: 0,
        is_down: false,
    }
}

/// A link to a local listener with a 4-byte prefix, and the accepted peer.
async fn link_and_peer() -> (TcpLink, TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let remote = Remote::Addr(listener.local_addr().expect("addr"));
    let (link, accepted) = tokio::join!(
        TcpLink::open(
            remote,
            LengthPrefix::U32,
            Duration::from_secs(5),
            LinkOptions::new(&crate::driver::DriverConfig::default())
        ),
        listener.accept()
    );
    (link.expect("connect"), accepted.expect("accept").0)
}

/// Receives until a batch with frames (or a state change) comes back.
async fn recv(
    link: &mut TcpLink,
    bufs: &mut [Vec<u8>],
    state: &mut LinkState,
) -> Vec<(usize, usize)> {
    let mut spans = vec![(0, 0); bufs.len()];
    let n = timeout(WAIT, link.recv_batch(bufs, &mut spans, state))
        .await
        .expect("in time");
    spans.truncate(n);
    spans
}

/// The peer chooses the length: a frame longer than the receive buffer is dropped (an
/// empty span), not copied past the buffer's end, and the frames after it still arrive.
#[tokio::test]
async fn a_frame_longer_than_the_buffer_is_dropped_not_indexed() {
    let (mut link, mut peer) = link_and_peer().await;
    let mut state = state();
    let mut wire = Vec::new();
    for frame in [&[7u8; 200][..], &[8u8; 60][..]] {
        wire.extend_from_slice(&u32::try_from(frame.len()).expect("short").to_be_bytes());
        wire.extend_from_slice(frame);
    }
    peer.write_all(&wire).await.expect("write");
    let mut bufs = vec![vec![0u8; 64]; 4];
    let mut spans = Vec::new();
    while spans.len() < 2 {
        spans.extend(recv(&mut link, &mut bufs[spans.len()..], &mut state).await);
    }
    assert_eq!(spans, [(0, 0), (0, 60)]);
    assert_eq!(bufs[1][..60], [8u8; 60]);
    assert!(state.status.is_empty(), "{:?}", state.status);
}

/// A length prefix beyond [`MAX_FRAME`] (here 2 GiB) can only be a broken or hostile
/// stream: the connection is dropped and reported, and the link retries.
#[tokio::test]
async fn a_length_prefix_beyond_max_frame_takes_the_connection_down() {
    let (mut link, mut peer) = link_and_peer().await;
    let mut state = state();
    peer.write_all(&0x7fff_ffffu32.to_be_bytes())
        .await
        .expect("write");
    peer.write_all(&[0u8; 1024]).await.expect("write");
    let mut bufs = vec![vec![0u8; MAX_FRAME]; 4];
    let spans = recv(&mut link, &mut bufs, &mut state).await;
    assert!(spans.is_empty());
    assert!(
        matches!(
            state.status.as_slice(),
            [LinkStatus::Down {
                retry_in: Some(_),
                ..
            }]
        ),
        "{:?}",
        state.status
    );
    assert!(matches!(link.state, TcpState::Waiting(_)));
}
