//! Crashes and stops of the gateway under load: nothing it acknowledged is lost.

use super::*;

/// The embedded Kafka broker and the gateway in one process (`sluice run` without a router).
const DOOR: [&str; 4] = ["--only", "brokers", "--only", "ingest"];

fn pause_between(seed: &mut u64, from_ms: u64, to_ms: u64) {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let ms = from_ms + (*seed >> 33) % (to_ms - from_ms);
    // Pacing the kills, not waiting for a condition: the moment is meant to be random.
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn kill_9_the_gateway_at_random_moments_and_every_acknowledged_message_is_in_kafka() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, "");
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    println!("gateway kill test: seed {seed}");
    let mut door = Sluice::start(&config, &DOOR, Some(http.clone()));
    let (devices, per_device) = (40, 300);
    let publisher = fleet(&setup.mqtt, 0, devices, per_device, 2_000, "kill9");
    let kills = 3;
    for k in 0..kills {
        pause_between(&mut seed, 500, 2_500);
        if k == 0 {
            // The first crash ends a stall: every client's in-flight window and request queue
            // are full when the connection drops, so the replay after reconnect is longest.
            door.freeze();
            pause_between(&mut seed, 1_500, 2_500);
        }
        door.kill();
        door = Sluice::start(&config, &DOOR, Some(http.clone()));
    }
    let report = publisher.join().unwrap();
    assert_eq!(
        report.acked, report.published,
        "every publish acknowledged in the end"
    );
    let want = expected_range(0, devices, per_device);
    let raw = RawTopic::read_covering(&setup.kafka, want.len(), &want);
    let (missing, copies, reordered) = raw.count(&want);
    println!(
        "gateway kill test: {kills} kills, {} acknowledged, {} records in Kafka, {missing} \
         missing, {copies} second copies (resends after a crash), {reordered} reordered",
        report.acked, raw.records
    );
    assert_eq!(missing, 0, "an acknowledged message is missing from Kafka");
    door.stop();
}

#[test]
fn sigterm_under_load_acknowledges_only_what_kafka_has_and_loses_nothing() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, "");
    let door = Sluice::start(&config, &DOOR, Some(http.clone()));
    let (devices, per_device) = (20, 300);
    let publisher = fleet(&setup.mqtt, 0, devices, per_device, 1_500, "term");
    wait_until("publishes flowing", Duration::from_secs(30), || {
        http_get(&http, "/metrics").is_some_and(|(_, m)| {
            metric_value(&m, "sluice_ingest_produced_total", &[]).unwrap_or(0.0) > 500.0
        })
    });
    door.stop(); // SIGTERM; asserts a clean exit within its deadline.
    let door = Sluice::start(&config, &DOOR, Some(http.clone()));
    let report = publisher.join().unwrap();
    assert_eq!(report.acked, report.published);
    let want = expected_range(0, devices, per_device);
    // Covering: were there copies, they would take places and hide the last seqs as missing.
    let raw = RawTopic::read_covering(&setup.kafka, want.len(), &want);
    let (missing, copies, reordered) = raw.count(&want);
    println!("gateway SIGTERM test: {missing} missing, {copies} copies, {reordered} reordered");
    assert_eq!(missing, 0);
    assert_eq!(
        copies, 0,
        "a graceful stop acknowledges what it produced: no resend copies"
    );
    door.stop();
}

#[test]
fn two_gateway_replicas_keep_each_devices_order_and_lose_nothing_when_killed() {
    let setup = Setup::new();
    let kafka_http = format!("127.0.0.1:{}", free_port());
    let kafka = setup.write_config("kafka.toml", &kafka_http, "");
    let _kafka = Sluice::start(&kafka, &["--only", "brokers"], Some(kafka_http));
    let doors: Vec<(String, String, std::path::PathBuf)> = ["a", "b"]
        .iter()
        .map(|name| {
            let (mqtt, http) = (
                format!("127.0.0.1:{}", free_port()),
                format!("127.0.0.1:{}", free_port()),
            );
            let m = mqtt.clone();
            let config = setup.write_config_with(&format!("door-{name}.toml"), &http, "", |c| {
                table(c, "embedded").insert("mqtt_listen".into(), m.into());
            });
            (mqtt, http, config)
        })
        .collect();
    let mut running: Vec<Sluice> = doors
        .iter()
        .map(|(_, http, config)| Sluice::start(config, &["--only", "ingest"], Some(http.clone())))
        .collect();

    // Without kills: every device's seqs in Kafka exactly in publish order.
    let per_device = 100;
    let a = fleet(&doors[0].0, 0, 20, per_device, 1_000, "rep-a1");
    let b = fleet(&doors[1].0, 20, 20, per_device, 1_000, "rep-b1");
    assert_eq!(
        a.join().unwrap().acked + b.join().unwrap().acked,
        40 * per_device
    );
    let want = expected_range(0, 40, per_device);
    let raw = RawTopic::read(&setup.kafka, want.len());
    let (missing, copies, reordered) = raw.count(&want);
    println!("two replicas, no kills: {missing} missing, {copies} copies, {reordered} reordered");
    assert_eq!((missing, copies, reordered), (0, 0, 0));

    // With a kill of each replica: nothing acknowledged lost.
    let a = fleet(&doors[0].0, 40, 20, per_device * 3, 1_000, "rep-a2");
    let b = fleet(&doors[1].0, 60, 20, per_device * 3, 1_000, "rep-b2");
    for (i, (_, http, config)) in doors.iter().enumerate() {
        std::thread::sleep(Duration::from_millis(1_500)); // pacing the kills
        let victim = running.remove(i);
        victim.kill();
        running.insert(
            i,
            Sluice::start(config, &["--only", "ingest"], Some(http.clone())),
        );
    }
    assert_eq!(
        a.join().unwrap().acked + b.join().unwrap().acked,
        40 * per_device * 3
    );
    let want = expected_range(40, 40, per_device * 3);
    let raw = RawTopic::read_covering(&setup.kafka, 40 * per_device as usize + want.len(), &want);
    let (missing, copies, reordered) = raw.count(&want);
    println!("two replicas, one kill each: {missing} missing, {copies} copies (resends after \
        a kill), {reordered} reordered (the client resends its in-flight window in packet-id order)");
    assert_eq!(missing, 0);
    for door in running {
        door.stop();
    }
}
