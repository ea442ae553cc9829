//! Unit tests of the neighbour cache: states, timing, queues and eviction.
use super::*;
use rand::SeedableRng;
use std::net::Ipv4Addr;

fn rng() -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(1)
}

const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x14]);
const IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);

fn frame(tag: u8, len: usize) -> Vec<u8> {
    let mut f = vec![tag; len];
    f[..14].fill(0);
    f
}

fn drain<A>(cache: &mut NeighbourCache<A>) -> Vec<Action<A>>
where
    A: Copy + Ord,
{
    std::iter::from_fn(|| cache.poll_action()).collect()
}

#[test]
fn miss_queues_solicits_and_flushes_in_order_on_reply() {
    let mut r = rng();
    let t0 = Instant::now();
    let mut cache = NeighbourCache::new(NeighbourConfig::default());
    assert_eq!(cache.lookup(t0, IP), None);
    assert_eq!(cache.enqueue(t0, IP, frame(1, 100)), Lookup::Queued);
    assert_eq!(cache.enqueue(t0, IP, frame(2, 100)), Lookup::Queued);
    let actions = drain(&mut cache);
    assert!(matches!(
        actions[..],
        [Action::Solicit {
            target: IP,
            unicast: None
        }]
    ));
    cache.confirm(t0 + Duration::from_millis(5), IP, MAC, &mut r);
    match drain(&mut cache).as_slice() {
        [Action::Flush {
            target,
            mac,
            frames,
        }] => {
            assert_eq!((*target, *mac), (IP, MAC));
            let tags: Vec<u8> = frames.iter().map(|f| f[20]).collect();
            assert_eq!(tags, vec![1, 2]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(cache.queued_bytes(), 0);
    assert_eq!(cache.lookup(t0 + Duration::from_secs(1), IP), Some(MAC));
    assert_eq!(cache.get(IP).unwrap().0, State::Reachable);
}

#[test]
fn unanswered_resolution_retries_three_times_then_fails_with_the_queue() {
    let _r = rng();
    let t0 = Instant::now();
    let mut cache = NeighbourCache::new(NeighbourConfig::default());
    cache.enqueue(t0, IP, frame(1, 60));
    let mut solicits = drain(&mut cache).len();
    let mut now = t0;
    let mut failed = None;
    while let Some(t) = cache.poll_timeout() {
        now = t;
        cache.handle_timeout(now);
        for action in drain(&mut cache) {
            match action {
                Action::Solicit { unicast: None, .. } => solicits += 1,
                Action::Unreachable { frames, .. } => failed = Some(frames.len()),
                other => panic!("unexpected {other:?}"),
            }
        }
        if failed.is_some() {
            break;
        }
    }
    assert_eq!(solicits, 3);
    assert_eq!(failed, Some(1));
    assert_eq!(now - t0, Duration::from_secs(3));
    assert!(cache.is_empty());
    assert_eq!(cache.counters.failed, 1);
    assert_eq!(cache.queued_bytes(), 0);
}

#[test]
fn stale_entry_is_used_then_probed_by_unicast_and_dropped_if_silent() {
    let _r = rng();
    let t0 = Instant::now();
    let mut cache = NeighbourCache::new(NeighbourConfig::default());
    cache.learn(t0, IP, MAC, true);
    assert_eq!(cache.get(IP).unwrap().0, State::Stale);
    // Use: DELAY, still sent with the known MAC.
    assert_eq!(cache.lookup(t0, IP), Some(MAC));
    assert_eq!(cache.get(IP).unwrap().0, State::Delay);
    assert_eq!(cache.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    cache.handle_timeout(t0 + Duration::from_secs(5));
    assert!(matches!(
        drain(&mut cache)[..],
        [Action::Solicit {
            unicast: Some(MAC),
            ..
        }]
    ));
    assert_eq!(cache.get(IP).unwrap().0, State::Probe);
    for s in 6..=8 {
        cache.handle_timeout(t0 + Duration::from_secs(s));
    }
    assert_eq!(drain(&mut cache).len(), 2, "three unicast probes in all");
    assert!(cache.get(IP).is_none());
}

#[test]
fn confirmation_in_probe_makes_reachable_and_reachable_expires_to_delay_on_use() {
    let mut r = rng();
    let t0 = Instant::now();
    let mut cache = NeighbourCache::new(NeighbourConfig::default());
    cache.learn(t0, IP, MAC, true);
    cache.lookup(t0, IP);
    cache.handle_timeout(t0 + Duration::from_secs(5));
    cache.confirm(t0 + Duration::from_secs(5), IP, MAC, &mut r);
    assert_eq!(cache.get(IP).unwrap().0, State::Reachable);
    // Reachable time is 15..45 s; at 60 s it is stale and the use starts DELAY.
    let later = t0 + Duration::from_secs(60);
    assert_eq!(cache.lookup(later, IP), Some(MAC));
    assert_eq!(cache.get(IP).unwrap().0, State::Delay);
}

#[test]
fn strangers_are_not_learned_without_create() {
    let t0 = Instant::now();
    let mut r = rng();
    let mut cache: NeighbourCache<Ipv4Addr> = NeighbourCache::new(NeighbourConfig::default());
    cache.learn(t0, IP, MAC, false);
    cache.confirm(t0, IP, MAC, &mut r);
    assert!(cache.is_empty());
}

#[test]
fn changed_mac_makes_entry_stale() {
    let t0 = Instant::now();
    let mut r = rng();
    let mut cache = NeighbourCache::new(NeighbourConfig::default());
    cache.enqueue(t0, IP, frame(1, 60));
    cache.confirm(t0, IP, MAC, &mut r);
    let other = MacAddr([2, 0, 0, 0, 0, 0x99]);
    cache.learn(t0, IP, other, false);
    assert_eq!(cache.get(IP), Some((State::Stale, other)));
}

#[test]
fn queue_limits_drop_oldest_per_neighbour_and_new_beyond_total() {
    let t0 = Instant::now();
    let mut r = rng();
    let config = NeighbourConfig {
        queue_packets_per_neighbour: 3,
        queue_bytes_total: 1000,
        ..NeighbourConfig::default()
    };
    let mut cache = NeighbourCache::new(config);
    for tag in 1..=5 {
        cache.enqueue(t0, IP, frame(tag, 100));
    }
    assert_eq!(cache.queued_frames(IP), 3);
    assert_eq!(cache.counters.queue_overflow_drops, 2);
    let other = Ipv4Addr::new(192, 0, 2, 30);
    assert_eq!(cache.enqueue(t0, other, frame(9, 600)), Lookup::Queued);
    assert_eq!(cache.enqueue(t0, other, frame(9, 600)), Lookup::Dropped);
    assert!(cache.queued_bytes() <= 1000);
    cache.confirm(t0, IP, MAC, &mut r);
    let flushed: Vec<u8> = drain(&mut cache)
        .into_iter()
        .filter_map(|a| match a {
            Action::Flush { frames, .. } => Some(frames.iter().map(|f| f[20]).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(flushed, vec![3, 4, 5]);
}

#[test]
fn full_table_evicts_resolved_lru_and_refuses_when_all_unresolved() {
    let t0 = Instant::now();
    let _r = rng();
    let config = NeighbourConfig {
        max_entries: 2,
        ..NeighbourConfig::default()
    };
    let mut cache = NeighbourCache::new(config);
    let a = Ipv4Addr::new(192, 0, 2, 1);
    let b = Ipv4Addr::new(192, 0, 2, 2);
    let c = Ipv4Addr::new(192, 0, 2, 3);
    cache.learn(t0, a, MAC, true);
    cache.enqueue(t0, b, frame(1, 60));
    assert_eq!(cache.enqueue(t0, c, frame(1, 60)), Lookup::Queued);
    assert!(cache.get(a).is_none(), "resolved entry evicted");
    assert_eq!(cache.counters.evictions, 1);
    let d = Ipv4Addr::new(192, 0, 2, 4);
    assert_eq!(cache.enqueue(t0, d, frame(1, 60)), Lookup::Dropped);
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.counters.table_full_drops, 1);
}

#[test]
fn eviction_takes_stale_entries_first_then_the_least_recently_used() {
    let mut r = rng();
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let config = NeighbourConfig {
        max_entries: 3,
        ..NeighbourConfig::default()
    };
    let mut cache = NeighbourCache::new(config);
    let addr = |n: u8| Ipv4Addr::new(192, 0, 2, n);
    // 1 and 2 resolve (REACHABLE), 3 is learnt STALE.
    for n in [1, 2] {
        cache.enqueue(ms(0), addr(n), frame(n, 60));
        cache.confirm(ms(1), addr(n), MAC, &mut r);
    }
    cache.learn(ms(2), addr(3), MAC, true);
    drain(&mut cache);
    // The stale entry goes first, whatever its age.
    cache.learn(ms(3), addr(4), MAC, true);
    assert!(cache.get(addr(3)).is_none());
    // 4 is stale now; using 1 keeps it, so after 4 the victim is 2, then 1.
    assert_eq!(cache.lookup(ms(4), addr(1)), Some(MAC));
    cache.learn(ms(5), addr(5), MAC, true);
    assert!(cache.get(addr(4)).is_none(), "the stale entry, again");
    cache.confirm(ms(6), addr(5), MAC, &mut r);
    cache.enqueue(ms(7), addr(6), frame(6, 60));
    assert!(cache.get(addr(2)).is_none(), "least recently used");
    assert!(cache.get(addr(1)).is_some() && cache.get(addr(5)).is_some());
    assert_eq!(cache.counters.evictions, 3);
}

#[test]
fn stale_unused_entries_are_collected() {
    let t0 = Instant::now();
    let mut cache: NeighbourCache<Ipv4Addr> = NeighbourCache::new(NeighbourConfig::default());
    cache.learn(t0, IP, MAC, true);
    let mut now = t0;
    while let Some(t) = cache.poll_timeout() {
        now = t;
        cache.handle_timeout(now);
    }
    assert!(cache.is_empty());
    assert!(now - t0 <= Duration::from_secs(90));
    assert_eq!(cache.counters.collected, 1);
}
