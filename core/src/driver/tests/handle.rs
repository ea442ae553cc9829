//! [`DriverHandle`] from other threads: Java threads (no runtime) block, listeners on the
//! driver's own runtime thread send without waiting.

use super::*;

#[test]
fn the_handle_and_its_replies_cross_threads() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    fn sendable<T: Send + 'static>() {}
    shareable::<DriverHandle>();
    sendable::<Reply<DriverStats>>();
    sendable::<DriverEvents>();
}

/// A current-thread runtime on its own thread, as the JNI bridge runs the driver; the
/// test's thread is a Java thread.
#[test]
fn threads_without_a_runtime_block_the_runtime_thread_never_does() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (link, _peer) = channel(64);
    let (handle, mut events) =
        runtime.block_on(async { Driver::start(config(), link, None).await.expect("start") });
    let listener_handle = handle.clone();
    let (answered_tx, answered_rx) = std::sync::mpsc::channel();
    let runtime_thread = std::thread::spawn(move || {
        runtime.block_on(async move {
            let handle = listener_handle;
            let mut answered = false;
            // A listener on the runtime thread: blocking would deadlock, so it fails;
            // sending without waiting works, and the reply can be awaited or dropped.
            let mut stopped = false;
            while let Some(event) = events.recv().await {
                match event {
                    DriverEvent::Tap(Event::Ipv4(Ipv4Event::Up(_))) => {
                        assert!(matches!(
                            handle.blocking_stats(),
                            Err(DriverError::OnRuntimeThread)
                        ));
                        let reply = handle.send_stats().expect("sent");
                        assert!(matches!(
                            reply.blocking_wait(),
                            Err(DriverError::OnRuntimeThread)
                        ));
                        // (The other thread may have attached its TUN by now, or not.)
                        let stats = handle.send_stats().expect("sent").await.expect("stats");
                        assert_eq!(stats.link, "channel:");
                        drop(handle.send_stats().expect("sent"));
                        answered = true;
                        let _ = answered_tx.send(());
                    }
                    DriverEvent::Stopped { error } => {
                        assert!(error.is_none(), "{error:?}");
                        stopped = true;
                    }
                    _ => {}
                }
            }
            drop(handle);
            (answered, stopped)
        })
    });
    // A Java thread: blocking calls wait for the runtime thread's answer.
    let stats = handle.blocking_stats().expect("stats");
    assert_eq!(stats.link, "channel:");
    let (ours, _theirs) = seqpacket_pair();
    // Registering needs the driver's reactor: the fd goes there with the command.
    assert!(handle.blocking_attach_tun(ours).expect("attach").is_none());
    assert!(handle.blocking_stats().expect("stats").tun_attached);
    assert!(handle.blocking_detach_tun().expect("detach").is_some());
    // The listener's commands must reach a running driver: stop only once it has asked.
    answered_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the listener saw the address come up and asked");
    handle.blocking_shutdown(true).expect("stopped");
    let (answered, stopped) = runtime_thread.join().expect("runtime thread");
    assert!(answered, "the listener's commands were answered");
    assert!(stopped, "Stopped was the last event");
    assert!(handle.is_stopped());
    assert!(matches!(handle.blocking_stats(), Err(DriverError::Stopped)));
    assert!(matches!(handle.send_stats(), Err(DriverError::Stopped)));
}

/// Commands sent without waiting beyond the queue's room fail with `Busy`, and the
/// driver takes them all once it runs.
#[tokio::test]
async fn a_burst_beyond_the_command_queue_is_busy() {
    let (link, _peer) = channel(64);
    let (handle, _events) = Driver::start(config(), link, None).await.expect("start");
    // The driver does not run until this task yields.
    let replies: Vec<_> = (0..COMMAND_CAPACITY)
        .map(|_| handle.send_stats().expect("room"))
        .collect();
    assert!(matches!(handle.send_stats(), Err(DriverError::Busy)));
    for reply in replies {
        reply.await.expect("answered");
    }
    assert!(handle.send_stats().is_ok());
    handle.stop().await;
}
