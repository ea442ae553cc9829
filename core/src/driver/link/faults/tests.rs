//! The fault layer alone: the spec's parsing, each fault's rate, determinism under a
//! seed, the order held frames come out in, and the bounded hold queue. Time is made
//! up: the lanes take it as an argument.

use std::time::{Duration, Instant};

use super::*;

fn spec(s: &str) -> LinkFaults {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn error(s: &str) -> String {
    match s.parse::<LinkFaults>() {
        Ok(f) => panic!("{s} parsed as {f:?}"),
        Err(e) => e.to_string(),
    }
}

/// Frame `i`: 64 bytes carrying `i` in the first four.
fn frame(i: u32) -> Vec<u8> {
    let mut f = vec![0xa5; 64];
    f[..4].copy_from_slice(&i.to_be_bytes());
    f
}

fn id(f: &[u8]) -> u32 {
    u32::from_be_bytes([f[0], f[1], f[2], f[3]])
}

/// Sends `n` frames through `lane` one per millisecond from `t0`, releasing what is
/// due after each, then everything held; returns the frames in the order they left.
fn run(lane: &mut Lane, t0: Instant, n: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut now = t0;
    for i in 0..n {
        now = t0 + Duration::from_millis(u64::from(i));
        let mut f = frame(i);
        if lane.admit(now, &mut f) == Verdict::Pass {
            out.push(f);
        }
        while let Some(f) = lane.take_due(now) {
            out.push(f);
        }
    }
    while let Some(at) = lane.next_due() {
        now = now.max(at);
        while let Some(f) = lane.take_due(now) {
            out.push(f);
        }
    }
    out
}

#[test]
fn parses_every_key_and_gives_the_spec_back() {
    let f = spec("drop=0.3,dup=0.05,reorder=0.01,corrupt=0.001,delay=20ms,seed=7");
    assert_eq!(
        f,
        LinkFaults {
            drop: 0.3,
            duplicate: 0.05,
            reorder: 0.01,
            corrupt: 0.001,
            delay_ms: 20,
            seed: 7,
            direction: FaultDirection::Both,
        }
    );
    assert_eq!(spec(&f.to_string()), f);
    let f = spec(" drop = 30% , delay=2s, dir=out, duplicate=1");
    assert_eq!((f.drop, f.delay_ms, f.duplicate), (0.3, 2000, 1.0));
    assert_eq!(f.direction, FaultDirection::ToLink);
    assert_eq!(spec(&f.to_string()), f);
    assert_eq!(spec("delay=15").delay_ms, 15);
    assert_eq!(spec("dir=in").direction, FaultDirection::FromLink);
}

#[test]
fn bad_specs_say_what_is_wrong_in_one_line() {
    for (s, needle) in [
        ("", "empty"),
        ("drop", "expected KEY=VALUE"),
        ("loss=0.1", "unknown fault `loss`"),
        ("drop=1.5", "drop: `1.5` is not a rate"),
        ("dup=-0.1", "dup: `-0.1`"),
        ("corrupt=150%", "corrupt: `150%`"),
        ("reorder=NaN", "reorder: `NaN`"),
        ("delay=fast", "delay: `fast`"),
        ("delay=2h", "delay: `2h`"),
        ("delay=5000s", "at most 1 hour"),
        ("seed=-1", "seed: `-1`"),
        ("dir=up", "dir: `up`"),
    ] {
        let e = error(s);
        assert!(e.contains(needle), "{s:?}: {e}");
        assert!(!e.contains('\n'), "{s:?}: {e}");
    }
}

#[test]
fn each_fault_happens_at_its_rate() {
    const N: u32 = 20_000;
    let t0 = Instant::now();
    for (s, pick) in [
        (
            "drop=0.3",
            (|c: &FaultCounters| c.dropped) as fn(&FaultCounters) -> u64,
        ),
        ("dup=0.05", |c| c.duplicated),
        ("reorder=0.02", |c| c.reordered),
        ("corrupt=0.01", |c| c.corrupted),
    ] {
        let f = spec(s);
        let rate = f.drop + f.duplicate + f.reorder + f.corrupt;
        let mut lane = Lane::new(f, true, 1);
        let out = run(&mut lane, t0, N);
        let c = lane.counters();
        let expected = rate * f64::from(N);
        let got = pick(&c) as f64;
        // Within 5 standard deviations of the binomial.
        let sd = (expected * (1.0 - rate)).sqrt();
        assert!(
            (got - expected).abs() < 5.0 * sd,
            "{s}: {got} vs {expected}"
        );
        assert_eq!(c.frames, u64::from(N), "{s}");
        assert_eq!(
            out.len() as u64,
            u64::from(N) - c.dropped + c.duplicated,
            "{s}: every frame not dropped leaves, duplicates twice"
        );
        assert_eq!(c.overflowed, 0, "{s}");
    }
}

#[test]
fn corruption_flips_exactly_one_bit() {
    let mut lane = Lane::new(spec("corrupt=0.1"), true, 3);
    let out = run(&mut lane, Instant::now(), 2000);
    // A flip in the id bytes turns a frame into another whole one: those are not seen.
    let bits: Vec<u32> = out
        .iter()
        .map(|f| {
            let original = frame(id(f));
            original
                .iter()
                .zip(f)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum()
        })
        .collect();
    assert!(bits.iter().all(|b| *b <= 1), "{bits:?}");
    let seen = bits.iter().filter(|b| **b == 1).count() as u64;
    let corrupted = lane.counters().corrupted;
    assert!(corrupted > 100, "{corrupted}");
    assert!(
        seen <= corrupted && seen * 10 >= corrupted * 8,
        "{seen} of {corrupted}"
    );
}

#[test]
fn the_same_seed_gives_the_same_faults_and_another_seed_other_faults() {
    let all = "drop=0.2,dup=0.1,reorder=0.1,corrupt=0.1,delay=3ms";
    let t0 = Instant::now();
    let runs: Vec<_> = [7, 7, 8]
        .into_iter()
        .map(|seed| {
            let mut lane = Lane::new(spec(all), true, seed);
            let out = run(&mut lane, t0, 5000);
            (out, lane.counters())
        })
        .collect();
    assert_eq!(runs[0], runs[1]);
    assert_ne!(runs[0].0, runs[2].0);
}

#[test]
fn delay_keeps_order_and_releases_nothing_early() {
    let mut lane = Lane::new(spec("delay=20ms"), true, 0);
    let t0 = Instant::now();
    for i in 0..10 {
        let mut f = frame(i);
        assert_eq!(
            lane.admit(t0 + Duration::from_millis(u64::from(i)), &mut f),
            Verdict::Gone
        );
    }
    assert_eq!(lane.next_due(), Some(t0 + Duration::from_millis(20)));
    assert_eq!(lane.take_due(t0 + Duration::from_millis(19)), None);
    let out: Vec<u32> = std::iter::from_fn(|| lane.take_due(t0 + Duration::from_millis(25)))
        .map(|f| id(&f))
        .collect();
    assert_eq!(out, [0, 1, 2, 3, 4, 5]);
    assert_eq!(lane.next_due(), Some(t0 + Duration::from_millis(26)));
    assert_eq!(lane.counters().delayed, 10);
}

#[test]
fn a_reordered_frame_leaves_right_after_the_next_one() {
    // Find a seed that reorders frame 1 of three at 50%.
    let t0 = Instant::now();
    let mut lane = (0..64)
        .map(|seed| Lane::new(spec("reorder=0.5"), true, seed))
        .find_map(|mut lane| {
            let mut f0 = frame(0);
            let mut f1 = frame(1);
            let ok = lane.admit(t0, &mut f0) == Verdict::Pass
                && lane.admit(t0, &mut f1) == Verdict::Gone;
            ok.then_some(lane)
        })
        .expect("a seed that reorders frame 1");
    assert_eq!(lane.take_due(t0), None, "held until overtaken");
    assert_eq!(lane.next_due(), Some(t0 + REORDER_HOLD));
    // Frame 2 passes (or is itself reordered, then both time out in order).
    let mut f2 = frame(2);
    let later = t0 + Duration::from_millis(1);
    if lane.admit(later, &mut f2) == Verdict::Pass {
        assert_eq!(lane.take_due(later).map(|f| id(&f)), Some(1));
    } else {
        assert_eq!(lane.take_due(later), None);
        let end = t0 + REORDER_HOLD + Duration::from_millis(1);
        assert_eq!(lane.take_due(end).map(|f| id(&f)), Some(1));
    }
}

#[test]
fn reordering_loses_nothing_and_only_reordered_frames_arrive_late() {
    let mut lane = Lane::new(spec("reorder=0.1"), true, 11);
    let out: Vec<u32> = run(&mut lane, Instant::now(), 5000)
        .iter()
        .map(|f| id(f))
        .collect();
    let mut sorted = out.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..5000).collect::<Vec<_>>());
    // A frame is late when a later one left before it.
    let mut max_seen = None;
    let mut overtaken = std::collections::BTreeSet::new();
    for &i in &out {
        if max_seen.is_some_and(|m| m > i) {
            overtaken.insert(i);
        }
        max_seen = max_seen.max(Some(i));
    }
    let reordered = lane.counters().reordered;
    assert!(reordered > 300, "{reordered}");
    assert!(overtaken.len() as u64 <= reordered);
    assert!(
        overtaken.len() as u64 * 10 >= reordered * 9,
        "{overtaken:?}"
    );
}

#[test]
fn the_hold_queue_is_bounded_and_counts_what_it_cannot_take() {
    let mut lane = Lane::new(spec("delay=1s,dup=1"), true, 0);
    let t0 = Instant::now();
    for i in 0..1000 {
        lane.admit(t0, &mut frame(i));
        assert!(lane.held() <= HOLD_CAPACITY);
    }
    assert_eq!(lane.held(), HOLD_CAPACITY);
    let c = lane.counters();
    assert_eq!(c.duplicated + c.delayed, HOLD_CAPACITY as u64);
    assert_eq!(c.overflowed, 2000 - HOLD_CAPACITY as u64);
    let out: Vec<u32> = std::iter::from_fn(|| lane.take_due(t0 + Duration::from_secs(1)))
        .map(|f| id(&f))
        .collect();
    assert_eq!(out, (0..128).flat_map(|i| [i, i]).collect::<Vec<_>>());
    assert_eq!(lane.held(), 0);
}

#[test]
fn an_inactive_direction_and_empty_frames_pass_untouched() {
    let faults = spec("drop=1,dir=out");
    let mut inbound = Faults::new(faults).from_link;
    let mut f = frame(1);
    assert_eq!(inbound.admit(Instant::now(), &mut f), Verdict::Pass);
    assert_eq!(inbound.counters(), FaultCounters::default());
    let mut outbound = Faults::new(faults).to_link;
    assert_eq!(outbound.admit(Instant::now(), &mut f), Verdict::Gone);
    assert_eq!(outbound.admit(Instant::now(), &mut []), Verdict::Pass);
    assert_eq!(outbound.counters().dropped, 1);
}

#[test]
fn a_batch_keeps_its_order_and_the_frames_the_link_marked_empty() {
    let t0 = Instant::now();
    let mut lane = Lane::new(spec("drop=0.5"), true, 5);
    let mut bufs: Vec<Vec<u8>> = (0..32).map(|i| [vec![0; 4], frame(i)].concat()).collect();
    let mut spans = vec![(4, 68); 32];
    spans[3] = (0, 0);
    let kept = lane.admit_batch(t0, &mut bufs, &mut spans, 32);
    let dropped = lane.counters().dropped as usize;
    assert_eq!(kept, 32 - dropped);
    assert!(dropped > 5 && dropped < 27, "{dropped}");
    assert!(
        spans[..kept].contains(&(0, 0)),
        "the link's empty span goes on"
    );
    let ids: Vec<u32> = (0..kept)
        .filter(|&i| spans[i] != (0, 0))
        .map(|i| id(&bufs[i][spans[i].0..spans[i].1]))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    // Held frames are released into the front of the buffers.
    let mut lane = Lane::new(spec("delay=5ms"), true, 5);
    assert_eq!(lane.admit_batch(t0, &mut bufs, &mut spans, kept), 1);
    let later = t0 + Duration::from_millis(5);
    let released = lane.release_into(later, &mut bufs[..4], &mut spans[..4]);
    assert_eq!(released, 4);
    assert_eq!(lane.held(), kept - 1 - 4);
}
