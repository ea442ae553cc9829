//! The driver's event queue: bounded, and never blocking the driver.
//!
//! A consumer that falls behind must not make the driver grow without limit (a LAN peer
//! can send router advertisements as fast as the link carries them, each one an
//! [`Ipv6Event::Changed`]), nor may it lose what it cannot do without. So events are of
//! three kinds:
//!
//! - **kept**: lease events ([`Event::Dhcp`]), [`Ipv4Event::Up`], [`DriverEvent::TunFailed`]
//!   and [`DriverEvent::Stopped`] are always queued. Their rate is bounded by the
//!   protocols' own timers (a DHCP exchange at most every few seconds) and by the
//!   embedder's own commands, never by how fast a peer sends;
//! - **latest wins**: [`Ipv6Event::Changed`] carries the whole [`Ipv6Info`], so a newer one
//!   replaces one not yet taken, in place: at most one is ever queued, and the consumer
//!   always gets the newest;
//! - **droppable**: every other event is queued while fewer than the capacity are, and
//!   otherwise dropped and counted ([`super::DriverStats::events_dropped`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::Notify;

use super::DriverEvent;
use crate::{Event, Ipv4Event, Ipv6Event, Ipv6Info};

/// Default of [`super::DriverConfig::event_capacity`].
pub const EVENT_CAPACITY: usize = 64;

/// The queue shared by the driver (pushing) and [`DriverEvents`] (taking).
#[derive(Debug)]
struct Queue {
    state: Mutex<State>,
    /// Wakes the consumer after a push or the close.
    ready: Notify,
}

#[derive(Debug)]
struct State {
    items: VecDeque<Item>,
    /// The newest IPv6 information not yet taken; an [`Item::Ipv6`] marks its place.
    ipv6: Option<Ipv6Info>,
    /// Most droppable events queued.
    capacity: usize,
    /// Droppable events queued.
    droppable: usize,
    dropped: u64,
    /// The driver has ended: nothing more will be pushed.
    closed: bool,
    /// The consumer is gone: nothing more needs to be queued.
    abandoned: bool,
}

#[derive(Debug)]
// The marker is the rare case; boxing every event to shrink it would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Item {
    Event(DriverEvent),
    /// Stands for the [`State::ipv6`] slot.
    Ipv6,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pop(&self) -> Result<DriverEvent, TryRecvError> {
        let mut state = self.lock();
        match state.items.pop_front() {
            Some(Item::Event(event)) => {
                if !is_kept(&event) {
                    state.droppable -= 1;
                }
                Ok(event)
            }
            Some(Item::Ipv6) => match state.ipv6.take() {
                Some(info) => Ok(DriverEvent::Tap(Event::Ipv6(Ipv6Event::Changed(info)))),
                None => Err(TryRecvError::Empty),
            },
            None if state.closed => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }
}

/// Creates the two ends of an event queue holding up to `capacity` droppable events.
pub(crate) fn queue(capacity: usize) -> (EventSender, DriverEvents) {
    let queue = Arc::new(Queue {
        state: Mutex::new(State {
            items: VecDeque::new(),
            ipv6: None,
            capacity: capacity.max(1),
            droppable: 0,
            dropped: 0,
            closed: false,
            abandoned: false,
        }),
        ready: Notify::new(),
    });
    (
        EventSender {
            queue: queue.clone(),
        },
        DriverEvents { queue },
    )
}

/// The driver's end of the queue. Dropping it closes the queue.
#[derive(Debug)]
pub(crate) struct EventSender {
    queue: Arc<Queue>,
}

impl EventSender {
    /// Queues `event` by its kind (see the module documentation); never blocks.
    pub(crate) fn push(&self, event: DriverEvent) {
        let mut state = self.queue.lock();
        if state.abandoned || state.closed {
            return;
        }
        match event {
            DriverEvent::Tap(Event::Ipv6(Ipv6Event::Changed(info))) => {
                if state.ipv6.replace(info).is_none() {
                    state.items.push_back(Item::Ipv6);
                }
            }
            event if is_kept(&event) => state.items.push_back(Item::Event(event)),
            event => {
                if state.droppable >= state.capacity {
                    state.dropped += 1;
                    return;
                }
                state.droppable += 1;
                state.items.push_back(Item::Event(event));
            }
        }
        drop(state);
        self.queue.ready.notify_one();
    }

    /// Events dropped so far because the consumer was behind.
    pub(crate) fn dropped(&self) -> u64 {
        self.queue.lock().dropped
    }

    /// Queues the last event and closes the queue.
    pub(crate) fn close(&self, last: DriverEvent) {
        self.push(last);
        self.queue.lock().closed = true;
        self.queue.ready.notify_one();
    }
}

impl Drop for EventSender {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.ready.notify_one();
    }
}

/// Never dropped for a slow consumer: see the module documentation.
fn is_kept(event: &DriverEvent) -> bool {
    matches!(
        event,
        DriverEvent::Tap(Event::Dhcp(_))
            | DriverEvent::Tap(Event::Ipv4(Ipv4Event::Up(_)))
            | DriverEvent::TunFailed(_)
            | DriverEvent::Stopped { .. }
    )
}

/// What the driver reports, in order, ending with [`DriverEvent::Stopped`]; returned by
/// [`super::Driver::start`]. The queue behind it is bounded and never blocks the
/// driver: lease events are always kept, a newer [`Ipv6Event::Changed`] replaces one not
/// yet taken, and other events beyond
/// [`super::DriverConfig::event_capacity`] are dropped and counted
/// ([`super::DriverStats::events_dropped`]).
#[derive(Debug)]
pub struct DriverEvents {
    queue: Arc<Queue>,
}

impl DriverEvents {
    /// The next event; `None` once the driver has ended and every event was taken.
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Option<DriverEvent> {
        loop {
            // Registered before looking, so a push in between still wakes us.
            let ready = self.queue.ready.notified();
            match self.queue.pop() {
                Ok(event) => return Some(event),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => ready.await,
            }
        }
    }

    /// The next event if one is queued, without waiting. Never blocks: callable from
    /// any thread, the driver's runtime thread included.
    pub fn try_recv(&mut self) -> Result<DriverEvent, TryRecvError> {
        self.queue.pop()
    }

    /// How many events are queued.
    pub fn len(&self) -> usize {
        self.queue.lock().items.len()
    }

    /// True when no event is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for DriverEvents {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.abandoned = true;
        state.items.clear();
        state.ipv6 = None;
        state.droppable = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::{DhcpEvent, LeaseLostReason, MacAddr};

    fn conflict(i: u8) -> DriverEvent {
        DriverEvent::Tap(Event::Ipv4(Ipv4Event::AddressConflict {
            address: Ipv4Addr::new(192, 0, 2, i),
            mac: MacAddr([2, 0, 0, 0, 0, i]),
        }))
    }

    fn lost(i: u8) -> DriverEvent {
        DriverEvent::Tap(Event::Dhcp(DhcpEvent::LeaseLost {
            address: Ipv4Addr::new(192, 0, 2, i),
            reason: LeaseLostReason::Expired,
        }))
    }

    fn ipv6(mtu: u16) -> DriverEvent {
        DriverEvent::Tap(Event::Ipv6(Ipv6Event::Changed(Ipv6Info {
            mtu: Some(mtu),
            ..Ipv6Info::default()
        })))
    }

    fn drain(events: &mut DriverEvents) -> Vec<DriverEvent> {
        std::iter::from_fn(|| events.try_recv().ok()).collect()
    }

    #[test]
    fn droppable_events_beyond_the_capacity_are_counted_kept_ones_never_dropped() {
        let (tx, mut rx) = queue(4);
        for i in 0..100 {
            tx.push(conflict(i));
            if i % 10 == 0 {
                tx.push(lost(i));
            }
        }
        assert_eq!(tx.dropped(), 96);
        assert_eq!(rx.len(), 4 + 10);
        let got = drain(&mut rx);
        let conflicts = got
            .iter()
            .filter(|e| matches!(e, DriverEvent::Tap(Event::Ipv4(_))))
            .count();
        assert_eq!(conflicts, 4);
        let lost: Vec<_> = got
            .iter()
            .filter_map(|e| match e {
                DriverEvent::Tap(Event::Dhcp(DhcpEvent::LeaseLost { address, .. })) => {
                    Some(address.octets()[3])
                }
                _ => None,
            })
            .collect();
        assert_eq!(lost, (0..100).step_by(10).collect::<Vec<u8>>());
        // Room again once the consumer has read.
        tx.push(conflict(1));
        assert_eq!(rx.len(), 1);
    }

    #[test]
    fn the_newest_ipv6_information_replaces_the_one_not_yet_taken() {
        let (tx, mut rx) = queue(4);
        tx.push(ipv6(1280));
        tx.push(lost(1));
        for mtu in 1281..1500 {
            tx.push(ipv6(mtu));
        }
        assert_eq!(rx.len(), 2);
        let got = drain(&mut rx);
        assert!(matches!(
            &got[0],
            DriverEvent::Tap(Event::Ipv6(Ipv6Event::Changed(i))) if i.mtu == Some(1499)
        ));
        assert!(matches!(got[1], DriverEvent::Tap(Event::Dhcp(_))));
        assert_eq!(tx.dropped(), 0);
        // Once taken, the next change is queued again.
        tx.push(ipv6(1400));
        assert_eq!(drain(&mut rx).len(), 1);
    }

    #[tokio::test]
    async fn recv_ends_after_the_last_event_once_closed() {
        let (tx, mut rx) = queue(4);
        let waiter = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(e) = rx.recv().await {
                got.push(e);
            }
            got
        });
        tx.push(conflict(1));
        tx.close(DriverEvent::Stopped { error: None });
        tx.push(conflict(2));
        let got = waiter.await.expect("join");
        assert_eq!(got.len(), 2);
        assert!(matches!(got[1], DriverEvent::Stopped { error: None }));
    }

    #[test]
    fn a_dropped_sender_closes_the_queue() {
        let (tx, mut rx) = queue(4);
        tx.push(conflict(1));
        drop(tx);
        assert!(rx.try_recv().is_ok());
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));
    }

    #[test]
    fn nothing_is_queued_once_the_consumer_is_gone() {
        let (tx, rx) = queue(4);
        drop(rx);
        tx.push(lost(1));
        assert_eq!(tx.queue.lock().items.len(), 0);
    }
}
