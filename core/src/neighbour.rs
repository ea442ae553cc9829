//! The neighbour cache shared by ARP (IPv4) and NDP (IPv6): Linux's neighbour states
//! and timing, a bounded table, and a bounded queue of packets waiting for resolution.
//!
//! The cache decides *when* to solicit and what to do with queued packets; the protocol
//! modules decide *how* (an ARP request, an NDP neighbour solicitation). It is generic
//! over the address type and never builds a frame itself: it hands [`Action`]s back.
//!
//! States follow RFC 4861 §7.3.2 as Linux implements them for both protocols:
//!
//! ```text
//!  (new) ──▶ INCOMPLETE ──reply──▶ REACHABLE ──reachable time──▶ STALE ──used──▶ DELAY
//!              │ 3 probes, 1 s apart              ▲                               │ 5 s
//!              ▼                                  └──────confirmation───── PROBE ◀┘
//!            failed: queued packets come back as Action::Unreachable        │ 3 unicast probes
//!                                                                           ▼
//!                                                                         removed
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use rand::{Rng, RngExt};

use crate::wire::ethernet::MacAddr;

/// Timing and size limits of a neighbour cache. Defaults are Linux's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourConfig {
    /// Base reachable time; each confirmation picks 0.5–1.5× of it (Linux: 30 s).
    pub base_reachable_time: Duration,
    /// Time between solicitations (Linux `retrans_time`: 1 s).
    pub retransmit_time: Duration,
    /// Broadcast/multicast solicitations before an unresolved neighbour fails (Linux: 3).
    pub multicast_probes: u8,
    /// Unicast probes of a stale neighbour before it is dropped (Linux: 3).
    pub unicast_probes: u8,
    /// Wait in DELAY before probing a stale neighbour that was used (Linux: 5 s).
    pub delay_first_probe: Duration,
    /// Stale entries unused this long are collected (Linux `gc_stale_time`: 60 s).
    pub gc_stale_time: Duration,
    /// Most entries the table holds (Linux `gc_thresh3`: 1024).
    pub max_entries: usize,
    /// Most packets queued for one unresolved neighbour; the oldest goes first.
    pub queue_packets_per_neighbour: usize,
    /// Most bytes queued for one unresolved neighbour (Linux `unres_qlen_bytes`: 212992).
    pub queue_bytes_per_neighbour: usize,
    /// Most bytes queued for all unresolved neighbours together.
    pub queue_bytes_total: usize,
}

impl Default for NeighbourConfig {
    fn default() -> Self {
        NeighbourConfig {
            base_reachable_time: Duration::from_secs(30),
            retransmit_time: Duration::from_secs(1),
            multicast_probes: 3,
            unicast_probes: 3,
            delay_first_probe: Duration::from_secs(5),
            gc_stale_time: Duration::from_secs(60),
            max_entries: 1024,
            queue_packets_per_neighbour: 64,
            queue_bytes_per_neighbour: 212_992,
            queue_bytes_total: 1 << 20,
        }
    }
}

/// The NUD state of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Being resolved; packets wait in the queue.
    Incomplete,
    /// Confirmed recently.
    Reachable,
    /// Known but unconfirmed; still used.
    Stale,
    /// Used while stale; a probe follows unless confirmed first.
    Delay,
    /// Being re-confirmed with unicast probes; still used.
    Probe,
}

/// What the owner of the cache must do.
#[derive(Debug)]
pub enum Action<A> {
    /// Send a solicitation for `target`: broadcast/multicast when `unicast` is `None`,
    /// else unicast to that MAC.
    Solicit {
        /// Address being resolved.
        target: A,
        /// The known MAC to probe directly, if any.
        unicast: Option<MacAddr>,
    },
    /// `target` resolved: send these queued frames (14 bytes of headroom each) to `mac`.
    Flush {
        /// The address that resolved.
        target: A,
        /// Its MAC.
        mac: MacAddr,
        /// Frames in the order they were queued, header not yet written.
        frames: VecDeque<Vec<u8>>,
    },
    /// Resolution of `target` failed: these queued frames are undeliverable.
    Unreachable {
        /// The address that did not answer.
        target: A,
        /// Frames in the order they were queued.
        frames: VecDeque<Vec<u8>>,
    },
}

/// The outcome of a lookup on the egress path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Send now to this MAC.
    Hit(MacAddr),
    /// The frame was queued until the neighbour resolves.
    Queued,
    /// The frame was dropped (table full of unresolved neighbours, or queue limits).
    Dropped,
}

/// Counters kept by a neighbour cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NeighbourCounters {
    /// Solicitations asked for (broadcast/multicast and unicast).
    pub solicitations: u64,
    /// Entries that went from INCOMPLETE to resolved.
    pub resolved: u64,
    /// Entries whose resolution or re-probe failed.
    pub failed: u64,
    /// Queued frames dropped because a queue limit was reached.
    pub queue_overflow_drops: u64,
    /// Frames dropped because the table was full of unresolved entries.
    pub table_full_drops: u64,
    /// Entries evicted to make room.
    pub evictions: u64,
    /// Entries collected after standing stale and unused.
    pub collected: u64,
}

#[derive(Debug)]
struct Entry {
    mac: MacAddr,
    state: State,
    /// When the current state's timer fires (INCOMPLETE, DELAY, PROBE) or, in REACHABLE,
    /// when the entry turns stale.
    deadline: Instant,
    probes_sent: u8,
    last_used: Instant,
    queue: VecDeque<Vec<u8>>,
    queue_bytes: usize,
    /// The key this entry is filed under in [`NeighbourCache::evictable`], if any.
    evict_key: Option<EvictKey>,
}

impl Entry {
    fn new(mac: MacAddr, state: State, deadline: Instant, probes_sent: u8, now: Instant) -> Entry {
        Entry {
            mac,
            state,
            deadline,
            probes_sent,
            last_used: now,
            queue: VecDeque::new(),
            queue_bytes: 0,
            evict_key: None,
        }
    }

    /// Where the entry belongs in the eviction order: stale entries first, then the
    /// least recently used. Unresolved entries are never evicted.
    fn current_evict_key(&self) -> Option<EvictKey> {
        (self.state != State::Incomplete).then_some((self.state != State::Stale, self.last_used))
    }
}

/// Eviction order of a resolved entry: (not stale, last used).
type EvictKey = (bool, Instant);

/// A bounded neighbour cache over addresses of type `A` (`Ipv4Addr` or `Ipv6Addr`).
#[derive(Debug)]
pub struct NeighbourCache<A> {
    config: NeighbourConfig,
    entries: BTreeMap<A, Entry>,
    timers: BinaryHeap<Reverse<(Instant, A)>>,
    /// Resolved entries in eviction order. A key's `last used` may be older than its
    /// entry's: lookups on the fast path leave the index alone, and eviction re-files
    /// such a key before choosing a victim, so eviction is O(log n) amortised, never a
    /// scan of the table.
    evictable: BTreeSet<(EvictKey, A)>,
    queued_bytes_total: usize,
    next_gc: Option<Instant>,
    actions: VecDeque<Action<A>>,
    /// Counters since creation.
    pub counters: NeighbourCounters,
}

impl<A: Copy + Ord> NeighbourCache<A> {
    /// An empty cache.
    pub fn new(config: NeighbourConfig) -> Self {
        NeighbourCache {
            config,
            entries: BTreeMap::new(),
            timers: BinaryHeap::new(),
            evictable: BTreeSet::new(),
            queued_bytes_total: 0,
            next_gc: None,
            actions: VecDeque::new(),
            counters: NeighbourCounters::default(),
        }
    }

    /// The limits this cache was built with.
    pub fn config(&self) -> &NeighbourConfig {
        &self.config
    }

    /// Changes the base reachable time and the retransmission time, as a router
    /// advertisement may (RFC 4861 §6.3.4); applies to timers started from now on.
    pub fn set_timing(
        &mut self,
        base_reachable_time: Option<Duration>,
        retransmit_time: Option<Duration>,
    ) {
        if let Some(t) = base_reachable_time {
            self.config.base_reachable_time = t;
        }
        if let Some(t) = retransmit_time {
            self.config.retransmit_time = t;
        }
    }

    /// Number of entries, resolved or not.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes queued for all unresolved neighbours.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes_total
    }

    /// Frames queued for one neighbour.
    pub fn queued_frames(&self, target: A) -> usize {
        self.entries.get(&target).map_or(0, |e| e.queue.len())
    }

    /// The state and MAC of an entry.
    pub fn get(&self, target: A) -> Option<(State, MacAddr)> {
        self.entries.get(&target).map(|e| (e.state, e.mac))
    }

    /// The next action the owner must carry out.
    pub fn poll_action(&mut self) -> Option<Action<A>> {
        self.actions.pop_front()
    }

    /// Looks up `target` for a frame about to be sent, without queueing anything.
    ///
    /// This is the fast path: on a hit the caller sends at once. On `None` the caller
    /// must call [`NeighbourCache::enqueue`] with a copy of the frame.
    #[inline]
    pub fn lookup(&mut self, now: Instant, target: A) -> Option<MacAddr> {
        let entry = self.entries.get_mut(&target)?;
        entry.last_used = now;
        match entry.state {
            State::Incomplete => return None,
            State::Reachable if now < entry.deadline => {}
            State::Reachable | State::Stale => {
                entry.state = State::Delay;
                entry.deadline = now + self.config.delay_first_probe;
                self.timers.push(Reverse((entry.deadline, target)));
            }
            State::Delay | State::Probe => {}
        }
        Some(entry.mac)
    }

    /// Queues `frame` (14 bytes of headroom, then the packet) until `target` resolves,
    /// creating an INCOMPLETE entry and asking for a solicitation when it is new.
    pub fn enqueue(&mut self, now: Instant, target: A, frame: Vec<u8>) -> Lookup {
        if let Some(mac) = self.lookup(now, target) {
            return Lookup::Hit(mac);
        }
        let len = frame.len();
        if len > self.config.queue_bytes_per_neighbour || len > self.config.queue_bytes_total {
            self.counters.queue_overflow_drops += 1;
            return Lookup::Dropped;
        }
        if !self.entries.contains_key(&target) {
            if self.entries.len() >= self.config.max_entries && !self.evict_one() {
                self.counters.table_full_drops += 1;
                return Lookup::Dropped;
            }
            let deadline = now + self.config.retransmit_time;
            self.entries.insert(
                target,
                Entry::new(MacAddr::ZERO, State::Incomplete, deadline, 1, now),
            );
            self.timers.push(Reverse((deadline, target)));
            self.counters.solicitations += 1;
            self.actions.push_back(Action::Solicit {
                target,
                unicast: None,
            });
            self.arm_gc(now);
        }
        let Some(entry) = self.entries.get_mut(&target) else {
            return Lookup::Dropped;
        };
        // Make room: per-neighbour limits drop this neighbour's oldest frames (as Linux
        // does); the global limit drops the new frame.
        while !entry.queue.is_empty()
            && (entry.queue.len() >= self.config.queue_packets_per_neighbour
                || entry.queue_bytes + len > self.config.queue_bytes_per_neighbour)
        {
            if let Some(old) = entry.queue.pop_front() {
                entry.queue_bytes -= old.len();
                self.queued_bytes_total -= old.len();
                self.counters.queue_overflow_drops += 1;
            }
        }
        if self.queued_bytes_total + len > self.config.queue_bytes_total {
            self.counters.queue_overflow_drops += 1;
            return Lookup::Dropped;
        }
        entry.queue_bytes += len;
        self.queued_bytes_total += len;
        entry.queue.push_back(frame);
        Lookup::Queued
    }

    /// A solicited confirmation (an ARP reply or an NA with the solicited flag) that
    /// `target` is at `mac`. Only updates an existing entry: unsolicited strangers are
    /// not learned.
    pub fn confirm(&mut self, now: Instant, target: A, mac: MacAddr, rng: &mut impl Rng) {
        let reachable = self.reachable_time(rng);
        let Some(entry) = self.entries.get_mut(&target) else {
            return;
        };
        let was_incomplete = entry.state == State::Incomplete;
        entry.mac = mac;
        entry.state = State::Reachable;
        entry.deadline = now + reachable;
        entry.probes_sent = 0;
        Self::file(&mut self.evictable, target, entry);
        if was_incomplete {
            self.counters.resolved += 1;
            self.flush(target);
        }
    }

    /// Evidence that `target` is at `mac` without confirmation of reachability (a request
    /// aimed at us, a gratuitous ARP, an NA without the solicited flag). Creates the entry
    /// as STALE only when `create` is set (the sender asked for us, so it will talk to us),
    /// otherwise updates an existing one: a changed MAC makes it STALE; an INCOMPLETE one
    /// resolves and flushes.
    pub fn learn(&mut self, now: Instant, target: A, mac: MacAddr, create: bool) {
        match self.entries.get_mut(&target) {
            Some(entry) => {
                if entry.state == State::Incomplete {
                    entry.mac = mac;
                    entry.state = State::Stale;
                    entry.last_used = now;
                    Self::file(&mut self.evictable, target, entry);
                    self.counters.resolved += 1;
                    self.flush(target);
                } else if entry.mac != mac {
                    entry.mac = mac;
                    entry.state = State::Stale;
                    Self::file(&mut self.evictable, target, entry);
                }
            }
            None if create => {
                if self.entries.len() >= self.config.max_entries && !self.evict_one() {
                    return;
                }
                let entry = self.entries.entry(target).or_insert(Entry::new(
                    mac,
                    State::Stale,
                    now,
                    0,
                    now,
                ));
                Self::file(&mut self.evictable, target, entry);
                self.arm_gc(now);
            }
            None => {}
        }
    }

    /// Makes a REACHABLE entry STALE without changing its MAC: an advertisement without
    /// the override flag named another MAC (RFC 4861 §7.2.5). Other states are kept.
    pub fn mark_stale(&mut self, target: A) {
        if let Some(entry) = self.entries.get_mut(&target) {
            if entry.state == State::Reachable {
                entry.state = State::Stale;
                Self::file(&mut self.evictable, target, entry);
            }
        }
    }

    /// Makes every REACHABLE entry STALE, keeping its MAC: the path to the neighbours
    /// may have changed (the link moved), so each is re-checked on its next use.
    pub fn mark_all_stale(&mut self) {
        for (target, entry) in self.entries.iter_mut() {
            if entry.state == State::Reachable {
                entry.state = State::Stale;
                Self::file(&mut self.evictable, *target, entry);
            }
        }
    }

    /// Removes an entry; frames still queued for it are reported undeliverable.
    pub fn remove(&mut self, target: A) {
        if let Some(entry) = self.entries.remove(&target) {
            if let Some(key) = entry.evict_key {
                self.evictable.remove(&(key, target));
            }
            self.queued_bytes_total -= entry.queue_bytes;
            if !entry.queue.is_empty() {
                self.actions.push_back(Action::Unreachable {
                    target,
                    frames: entry.queue,
                });
            }
        }
    }

    /// Forgets every entry (an address change); queued frames are reported undeliverable.
    pub fn clear(&mut self) {
        let targets: Vec<A> = self.entries.keys().copied().collect();
        for target in targets {
            self.remove(target);
        }
        self.timers.clear();
        self.next_gc = None;
    }

    /// When [`NeighbourCache::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((t, _))| *t);
        match (timer, self.next_gc) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, target))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            self.fire(now, target, at);
        }
        if self.next_gc.is_some_and(|t| t <= now) {
            self.collect(now);
        }
        // Stale heap items (superseded deadlines) are skipped when popped; rebuild when
        // they pile up so the heap stays proportional to the table.
        if self.timers.len() > 4 * self.entries.len() + 64 {
            self.timers = self
                .entries
                .iter()
                .filter(|(_, e)| e.state != State::Reachable && e.state != State::Stale)
                .map(|(a, e)| Reverse((e.deadline, *a)))
                .collect();
        }
    }

    fn fire(&mut self, now: Instant, target: A, at: Instant) {
        let cfg = &self.config;
        let Some(entry) = self.entries.get_mut(&target) else {
            return;
        };
        if entry.deadline != at {
            return;
        }
        // Some(unicast MAC or None for broadcast/multicast) when a solicitation is due.
        let solicit = match entry.state {
            State::Incomplete if entry.probes_sent < cfg.multicast_probes => {
                entry.probes_sent += 1;
                None
            }
            State::Delay => {
                entry.state = State::Probe;
                entry.probes_sent = 1;
                Some(entry.mac)
            }
            State::Probe if entry.probes_sent < cfg.unicast_probes => {
                entry.probes_sent += 1;
                Some(entry.mac)
            }
            State::Incomplete | State::Probe => {
                self.counters.failed += 1;
                self.remove(target);
                return;
            }
            State::Reachable | State::Stale => return,
        };
        entry.deadline = now + cfg.retransmit_time;
        self.timers.push(Reverse((entry.deadline, target)));
        self.counters.solicitations += 1;
        self.actions.push_back(Action::Solicit {
            target,
            unicast: solicit,
        });
    }

    fn flush(&mut self, target: A) {
        if let Some(entry) = self.entries.get_mut(&target) {
            if entry.queue.is_empty() {
                return;
            }
            let frames = std::mem::take(&mut entry.queue);
            self.queued_bytes_total -= entry.queue_bytes;
            entry.queue_bytes = 0;
            let mac = entry.mac;
            self.actions.push_back(Action::Flush {
                target,
                mac,
                frames,
            });
        }
    }

    fn reachable_time(&self, rng: &mut impl Rng) -> Duration {
        let base = self.config.base_reachable_time;
        let factor = rng.random_range(0.5..1.5);
        base.mul_f64(factor)
    }

    fn arm_gc(&mut self, now: Instant) {
        if self.next_gc.is_none() {
            self.next_gc = Some(now + self.config.gc_stale_time / 2);
        }
    }

    fn collect(&mut self, now: Instant) {
        let stale_time = self.config.gc_stale_time;
        let before = self.entries.len();
        self.entries.retain(|_, e| {
            let expired = match e.state {
                State::Stale => true,
                State::Reachable => now >= e.deadline,
                _ => false,
            };
            !(expired && now.saturating_duration_since(e.last_used) >= stale_time)
        });
        self.counters.collected += (before - self.entries.len()) as u64;
        if before != self.entries.len() {
            let entries = &self.entries;
            self.evictable.retain(|(_, a)| entries.contains_key(a));
        }
        self.next_gc = if self.entries.is_empty() {
            None
        } else {
            Some(now + stale_time / 2)
        };
    }

    /// Evicts the least recently used resolved entry, stale ones first; false when every
    /// entry is unresolved (those are never evicted, so their queued packets are
    /// accounted for).
    fn evict_one(&mut self) -> bool {
        while let Some((key, target)) = self.evictable.pop_first() {
            let Some(entry) = self.entries.get_mut(&target) else {
                continue;
            };
            let current = entry.current_evict_key();
            if current == Some(key) {
                self.entries.remove(&target);
                self.counters.evictions += 1;
                return true;
            }
            // Used (or changed state) since it was filed: file it where it belongs now.
            entry.evict_key = current;
            if let Some(current) = current {
                self.evictable.insert((current, target));
            }
        }
        false
    }

    /// Files `entry` under its current eviction key, replacing the old one.
    fn file(evictable: &mut BTreeSet<(EvictKey, A)>, target: A, entry: &mut Entry) {
        let key = entry.current_evict_key();
        if key == entry.evict_key {
            return;
        }
        if let Some(old) = entry.evict_key {
            evictable.remove(&(old, target));
        }
        if let Some(key) = key {
            evictable.insert((key, target));
        }
        entry.evict_key = key;
    }
}

#[cfg(test)]
mod tests;
