use super::book::*;
use super::AlertBoard;
use serde_json::Map;
use std::sync::Arc;

const T: Timing = Timing {
    cooldown_ms: 1_000,
    resolve_after_ms: 500,
};

fn hot(device: &str, seen: i64) -> Occurrence {
    Occurrence {
        key: format!("hot/{device}"),
        rule: "hot".into(),
        device: device.into(),
        severity: "critical".into(),
        columns: Map::new(),
        seen_ms: seen,
        partition: 0,
    }
}

fn fired(o: Observed) -> Notification {
    match o {
        Observed::Fired(n) => n,
        other => panic!("expected a firing notification, got {other:?}"),
    }
}

#[test]
fn a_key_fires_once_then_counts_repeats_then_resolves_after_the_quiet_period() {
    let mut book = AlertBook::default();
    let n = fired(book.observe(hot("d1", 10), 100, T));
    assert_eq!((n.alert.status, n.alert.count), (AlertStatus::Firing, 1));
    assert_eq!(book.observe(hot("d1", 20), 200, T), Observed::Suppressed);
    assert_eq!(book.observe(hot("d1", 30), 300, T), Observed::Suppressed);
    // Another device is another key.
    fired(book.observe(hot("d2", 30), 300, T));
    assert!(
        book.sweep(700, T).is_empty(),
        "d1 was updated at 300: not quiet yet"
    );
    let resolved = book.sweep(800, T);
    assert_eq!(resolved.len(), 2);
    let d1 = resolved.iter().find(|n| n.alert.device == "d1").unwrap();
    assert_eq!(d1.alert.status, AlertStatus::Resolved);
    assert_eq!(
        (
            d1.alert.count,
            d1.alert.first_seen_ms,
            d1.alert.last_seen_ms
        ),
        (3, 10, 30)
    );
    assert_eq!(book.firing().count(), 0);
}

#[test]
fn a_key_that_fires_again_within_the_cooldown_is_suppressed_and_not_resolved_twice() {
    let mut book = AlertBook::default();
    fired(book.observe(hot("d1", 0), 0, T));
    assert_eq!(book.sweep(600, T).len(), 1);
    // 700 ms after the firing notice: inside the 1 s cooldown.
    assert_eq!(book.observe(hot("d1", 700), 700, T), Observed::Suppressed);
    assert_eq!(book.firing().count(), 1, "it is firing again, silently");
    assert!(
        book.sweep(1_300, T).is_empty(),
        "no resolve for an unnotified firing"
    );
    // After the cooldown it notifies again.
    let n = fired(book.observe(hot("d1", 1_500), 1_500, T));
    assert_eq!(n.alert.count, 1);
}

#[test]
fn the_outbox_keeps_a_failed_notification_until_the_checkpoint_after_its_hand_over() {
    let mut book = AlertBook::default();
    let n = fired(book.observe(hot("d1", 0), 0, T));
    let delivered = fired(book.observe(hot("d2", 0), 0, T));
    book.outbox.remove(&delivered.id);
    book.outbox.get_mut(&n.id).unwrap().handed_over = Some(book.checkpoints + 1);
    book.checkpoint();
    assert!(
        book.outbox.contains_key(&n.id),
        "its error output may not be durable yet"
    );
    book.checkpoint();
    assert!(book.outbox.is_empty());
}

#[test]
fn the_book_survives_a_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts/state.json");
    assert_eq!(AlertBook::load(&path).unwrap(), AlertBook::default());
    let mut book = AlertBook::default();
    fired(book.observe(hot("d1", 5), 5, T));
    // What changed since the checkpoint is for the changelog, not the file.
    assert_eq!(book.take_changes().len(), 1);
    book.save(&path).unwrap();
    assert_eq!(AlertBook::load(&path).unwrap(), book);
}

#[test]
fn changes_follow_their_partition_and_a_released_partition_leaves_the_book() {
    let mut book = AlertBook::default();
    let on = |device: &str, partition: i32| Occurrence {
        partition,
        ..hot(device, 0)
    };
    fired(book.observe(on("d0", 0), 0, T));
    fired(book.observe(on("d1", 1), 0, T));
    let changes = book.take_changes();
    let keys: Vec<(i32, &str, bool)> = changes
        .iter()
        .map(|(p, k, a)| (*p, k.as_str(), a.is_some()))
        .collect();
    assert_eq!(keys, [(0, "hot/d0", true), (1, "hot/d1", true)]);
    assert!(book.take_changes().is_empty(), "taken once");

    // Partition 1 moves away: its key leaves this book (its new owner resolves it).
    let released = book.release(&[1]);
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].key, "hot/d1");
    assert!(book.alerts.contains_key("hot/d0") && !book.alerts.contains_key("hot/d1"));
    assert_eq!(
        book.sweep(600, T).len(),
        1,
        "only the owned key resolves here"
    );

    // Past the cooldown a resolved key is forgotten: a tombstone for the changelog.
    book.take_changes();
    book.sweep(10_000, T);
    let forgotten = book.take_changes();
    assert_eq!(forgotten.len(), 1);
    assert_eq!((forgotten[0].0, forgotten[0].2.is_none()), (0, true));
}

#[test]
fn a_resolved_notification_that_failed_becomes_a_row_a_parquet_error_action_takes() {
    let mut book = AlertBook::default();
    fired(book.observe(hot("d1", 0), 0, T));
    let resolved = book.sweep(600, T).remove(0);
    let row = super::notification_row(&resolved).expect("a row");
    assert_eq!(row.num_rows(), 1);
    // The error action's rows carry the reason, and a Parquet sink must accept them.
    let failed = sluice_processors::rule::route::with_error(&row, "webhook down").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut sink = crate::parquet::ParquetSink::new(
        "failed",
        dir.path().into(),
        Default::default(),
        std::sync::Arc::default(),
    )
    .unwrap();
    let output = crate::RuleOutput {
        source: failed.clone(),
        rows: failed,
    };
    crate::Sink::write(&mut sink, "hot", &output).unwrap();
    let stats = crate::Sink::checkpoint(&mut sink).unwrap();
    assert_eq!(stats.rows, 1);
    let text = format!("{:?}", row.column_by_name("alert_status").unwrap());
    assert!(text.contains("resolved"), "{text}");
}

/// #24.13: a worker probing a dead destination ends once its sink is gone (the stop flag the
/// sink sets when dropped), instead of probing forever beside the restarted stage's worker.
#[test]
fn g13_a_worker_probing_a_dead_destination_ends_when_its_sink_stops() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    // Nothing listens on port 1: every attempt fails at once.
    let dead = sluice_config::AlertDestination::Webhook {
        url: "http://127.0.0.1:1/hook".into(),
        timeout_ms: 200,
        retries: 0,
        backoff_ms: 1,
    };
    let destination = super::deliver::Destination::build(&dead, &rdkafka::ClientConfig::new())
        .expect("a webhook destination");
    let board = Arc::new(AlertBoard::new(AlertBook::default()));
    let (queue, receiver) = std::sync::mpsc::channel();
    let mut book = AlertBook::default();
    // TRIP_AFTER failures open the circuit; the next one is probed until it gets through.
    for i in 0..=super::deliver::TRIP_AFTER {
        queue
            .send(fired(book.observe(hot(&format!("d{i}"), 10), 100, T)))
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (board, stop) = (board.clone(), stop.clone());
        std::thread::spawn(move || {
            super::deliver::run("dead", receiver, vec![destination], board, stop)
        })
    };
    // The sink is dropped: its queue closes and the flag is set.
    drop(queue);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !worker.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !worker.is_finished(),
        "the circuit is open: the worker is probing"
    );
    stop.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !worker.is_finished() {
        assert!(Instant::now() < deadline, "the worker outlived its sink");
        std::thread::sleep(Duration::from_millis(20));
    }
    worker.join().unwrap();
}

/// #24.6: alert keys come from device data; past `max_keys` a new key is refused (not held,
/// not notified), while the keys held go on firing, suppressing and resolving.
#[test]
fn g6_a_new_alert_key_past_max_keys_is_refused_and_held_keys_go_on() {
    let mut book = AlertBook {
        max_keys: 2,
        ..AlertBook::default()
    };
    fired(book.observe(hot("d1", 10), 100, T));
    fired(book.observe(hot("d2", 10), 100, T));
    assert_eq!(book.observe(hot("d3", 10), 100, T), Observed::Refused);
    assert_eq!(book.observe(hot("d1", 20), 200, T), Observed::Suppressed);
    assert_eq!(book.alerts.len(), 2);
    assert!(!book.take_changes().iter().any(|(_, k, _)| k == "hot/d3"));
    // Once held keys are forgotten (resolved, past the cooldown), new keys fit again.
    book.sweep(2_000, T);
    book.sweep(4_000, T);
    assert!(book.alerts.is_empty());
    fired(book.observe(hot("d3", 4_000), 4_000, T));
}
