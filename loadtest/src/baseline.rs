//! Side-by-side baselines on the same broker and data, in the same run (the machine's noise
//! cancels out in the ratios):
//! - **router vs bare consumer**: a bare rdkafka consumer (no processing) reads the raw topic
//!   from the beginning — the transport limit — then Sluice's router, in this process with a
//!   fresh group and the instance's rules, routes the same records into a scratch directory.
//! - **ingest vs bare subscriber** (broker mode): a burst is published while a bare MQTT
//!   subscriber and the running ingest both receive it; the subscriber's receive rate is the
//!   broker's limit, ingest's rate is how fast the burst lands in Kafka.
//! - **gateway vs bare producer** (gateway mode: the endpoint refuses subscriptions): how fast
//!   the burst lands in Kafka through the gateway, against a bare rdkafka producer writing
//!   the same number of records of the same size (acks=all, idempotent, as the gateway does)
//!   to a scratch topic — the embedded Kafka broker's own limit.

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;
use sluice_common::Stats;
use sluice_config::Config;
use sluice_processors::rule::devices::DeviceTags;
use sluice_processors::rule::RuleSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Baselines {
    pub records: u64,
    pub bare_consumer_rate: f64,
    pub router_rate: f64,
    /// router ÷ bare consumer (DESIGN target ≥ 0.70).
    pub router_ratio: f64,
    /// Messages the burst got out in its second (at most `--burst`: the front door may push
    /// back), and so the messages each front-door rate is over.
    pub burst: u64,
    pub bare_subscriber_rate: f64,
    pub ingest_rate: f64,
    /// ingest ÷ bare subscriber.
    pub ingest_ratio: f64,
    /// The front door measured: "ingest" (a broker's subscriber) or "gateway".
    pub front_door: String,
    /// Gateway mode: a bare rdkafka producer's records/s, and gateway ÷ producer.
    pub bare_producer_rate: f64,
    pub gateway_ratio: f64,
}

impl Baselines {
    pub fn print(&self) {
        println!("\nbaselines (same broker, same data, this run):");
        println!(
            "  bare rdkafka consumer {:>10.0} records/s   router {:>10.0} records/s   router/transport {:.2}  ({} records)",
            self.bare_consumer_rate, self.router_rate, self.router_ratio, self.records
        );
        if self.front_door == "gateway" {
            println!(
                "  bare rdkafka producer {:>10.0} records/s   gateway {:>9.0} msg/s       gateway/kafka {:.2}  ({} messages)",
                self.bare_producer_rate, self.ingest_rate, self.gateway_ratio, self.burst
            );
        } else {
            println!(
                "  bare MQTT subscriber  {:>10.0} msg/s       ingest {:>10.0} msg/s       ingest/transport {:.2}  ({} messages)",
                self.bare_subscriber_rate, self.ingest_rate, self.ingest_ratio, self.burst
            );
        }
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the raw topic's watermarks through one client (polled often during a burst).
pub struct Watermarks {
    client: BaseConsumer,
    topic: String,
}

impl Watermarks {
    pub fn new(bootstrap: &str, topic: &str) -> anyhow::Result<Watermarks> {
        let client = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()?;
        Ok(Watermarks {
            client,
            topic: topic.into(),
        })
    }

    /// Sums of the (low, high) watermarks over the partitions.
    pub fn sum(&self) -> anyhow::Result<(i64, i64)> {
        let md = self.client.fetch_metadata(Some(&self.topic), TIMEOUT)?;
        let mut sum = (0, 0);
        for p in md.topics().iter().flat_map(|t| t.partitions()) {
            let (lo, hi) = self.client.fetch_watermarks(&self.topic, p.id(), TIMEOUT)?;
            sum = (sum.0 + lo, sum.1 + hi);
        }
        Ok(sum)
    }
}

/// Records/s of a consumer that reads `records` from the beginning and does nothing else.
pub fn bare_consumer(bootstrap: &str, topic: &str, records: u64) -> anyhow::Result<f64> {
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("sluice-baseline-{}", std::process::id()),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", sluice_kafka::FETCH_WAIT_MS)
        .create()?;
    c.subscribe(&[topic])?;
    let started = Instant::now();
    let mut n = 0u64;
    while n < records {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "bare consumer stalled at {n}"
        );
        if let Some(Ok(_)) = c.poll(Duration::from_millis(100)) {
            n += 1;
        }
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Records/s of Sluice's router over the same records: the instance's rules and sinks, a
/// fresh consumer group, outputs under a scratch directory.
pub async fn router(config: &Config, bootstrap: &str, records: u64) -> anyhow::Result<f64> {
    let scratch = std::env::temp_dir().join(format!("sluice-baseline-{}", std::process::id()));
    let mut config = config.clone();
    config.data_dir = scratch.clone();
    config.router.group_id = format!("sluice-baseline-router-{}", std::process::id());
    // Alerts and compliance write only their own state under the scratch dir; keep every sink.
    let devices = DeviceTags::default();
    let rules = RuleSet::compile_with(&config.rules, &devices)
        .map_err(|e| anyhow::anyhow!("rules: {}", e.len()))?
        .with_fallback(config.router.fallback_action.clone());
    let control = Arc::new(sluice_router::reload::RuleControl::new(
        &rules,
        &config.rules,
    ));
    let stats = Arc::new(Stats::default());
    let ctx = sluice_sinks::SinkContext {
        stats: stats.clone(),
        kafka: sluice_kafka::kafka_client_config(&config, bootstrap),
    };
    let sinks = sluice_sinks::build_sinks(&config, &ctx)?.sinks;
    let router =
        sluice_router::Router::new(&config, bootstrap, rules, control, sinks, stats.clone())?;
    let stop = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(router.run(stop.clone()));
    while Stats::get(&stats.routed) < records {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "router stalled"
        );
        anyhow::ensure!(!task.is_finished(), "the baseline router stopped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rate = records as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = task.await;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(rate)
}

/// What a bare subscriber received: (count, first, last).
pub type Received = Arc<std::sync::Mutex<(u64, Option<Instant>, Option<Instant>)>>;

/// Records/s of a bare rdkafka producer (acks=all, idempotent, the gateway's settings)
/// writing `records` records of `payload` to `topic` (created with `partitions` if missing).
pub async fn bare_producer(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    records: u64,
    payload: &[u8],
) -> anyhow::Result<f64> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = config.create()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let _ = admin.create_topics(&[new], &AdminOptions::new()).await;
    let producer: FutureProducer = config
        .clone()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()?;
    let started = Instant::now();
    let mut pending = futures::stream::FuturesUnordered::new();
    for i in 0..records {
        let key = format!("dev-{:05}", i % 1000);
        loop {
            let record = FutureRecord::to(topic).key(&key).payload(payload);
            match producer.send_result(record) {
                Ok(f) => {
                    pending.push(f);
                    break;
                }
                Err(_) => {
                    // Queue full: let confirmations make room.
                    use futures::StreamExt;
                    let _ = pending.next().await;
                }
            }
        }
    }
    use futures::StreamExt;
    while let Some(r) = pending.next().await {
        anyhow::ensure!(
            matches!(r, Ok(Ok(_))),
            "bare producer: a record was not confirmed"
        );
    }
    Ok(records as f64 / started.elapsed().as_secs_f64())
}

/// Subscribes a bare MQTT client to `filter`; returns a handle counting what it receives, or
/// `None` when the endpoint refuses subscriptions (Sluice's gateway).
pub async fn bare_subscriber(broker: &str, filter: &str) -> anyhow::Result<Option<Received>> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let (host, port) = sluice_common::addr::host_port(broker)?;
    let mut opts = MqttOptions::new(
        format!("sluice-baseline-sub-{}", std::process::id()),
        host,
        port,
    );
    opts.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    client.subscribe(filter, QoS::AtLeastOnce).await?;
    let counts = Arc::new(std::sync::Mutex::new((0u64, None, None)));
    let out = counts.clone();
    let subscribed = Arc::new(tokio::sync::Notify::new());
    let ready = subscribed.clone();
    let refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let no = refused.clone();
    tokio::spawn(async move {
        let _client = client;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let failed = rumqttc::SubscribeReasonCode::Failure;
                    no.store(
                        ack.return_codes.contains(&failed),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    ready.notify_one();
                    if ack.return_codes.contains(&failed) {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    let mut c = out.lock().unwrap_or_else(|e| e.into_inner());
                    let now = Instant::now();
                    c.0 += 1;
                    c.1.get_or_insert(now);
                    c.2 = Some(now);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed.notified()).await?;
    match refused.load(std::sync::atomic::Ordering::Relaxed) {
        true => Ok(None),
        false => Ok(Some(counts)),
    }
}
