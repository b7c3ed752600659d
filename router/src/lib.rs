//! Sluice router: Kafka consumer group → Arrow batches → rules → sinks.
//!
//! Layout:
//! - [`Router`]: the consume loop. Records from `telemetry.raw` are gathered into a
//!   [`RawBatch`] until `router.batch.max_rows` or `max_wait_ms`, then processed as one batch.
//! - [`step`]: one batch's work without I/O: decode (JSON → Arrow), evaluate every rule, sort
//!   rows and records into a [`step::StepOutput`] (what goes to which action, what to the
//!   dead-letter topic). Unit-tested alone.
//! - [`process`]: applies a step's output: rows to sinks (failed writes to error actions),
//!   records to the dead-letter topic.
//! - [`events`]: what happens in the router, each logged and counted in one `emit()`.
//! - [`offsets`]: which offsets are safe to commit.
//! - [`rebalance`]: partition assignments and revocations, queued by the consumer's context
//!   and applied by the router between steps (sinks recover or forget the partitions).
//! - [`dlq`]: the dead-letter producer, whose records must be confirmed before a commit.
//! - [`reload`]: the reloader (rule files and devices CSV re-read while running) and where a
//!   reloaded rule set waits for the next batch boundary.
//! - [`preview`]: rules run on records already in the raw topic, read-only (`sluice rules
//!   preview`).
//! - [`scaling`]: the consumer group's lag and rates sampled into replica advice
//!   (`/scaling`, `sluice scale`, the `sluice_kafka_*` gauges).
//! - [`poison`], [`isolate`]: offsets a router died on become suspect; after
//!   [`poison::ISOLATE_AFTER`] failures the batch is bisected and the poison records go to the
//!   dead-letter topic, so one message never stops the router for good.
//!
//! Delivery: a checkpoint (every `router.commit_interval_ms`, and at shutdown) processes the
//! partial batch, makes every sink durable (Parquet files published after their ledger),
//! waits for dead-letter records to be confirmed, and only then commits the offsets it
//! consumed. A crash or a revocation between checkpoints replays from the last commit: the
//! Parquet sink skips what its ledger already holds (effectively-once); the other sinks see
//! the replay (at-least-once).

mod dlq;
pub mod events;
pub mod isolate;
mod offsets;
pub mod poison;
pub mod preview;
mod process;
pub mod rebalance;
pub mod reload;
pub mod scaling;
pub mod sparkplug;
pub mod step;
pub use step::FALLBACK_RULE;

use dlq::DeadLetters;
use offsets::Offsets;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rebalance::RebalanceContext;
use sluice_common::Event;
use sluice_common::Stats;
use sluice_config::Config;
use sluice_core::RetiredDevices;
use sluice_processors::decode::formats::PayloadFormats;
use sluice_processors::decode::{BatchDecoder, RawBatch};
use sluice_processors::record::TelemetryRecord;
use sluice_processors::rule::RuleSet;
use sluice_sinks::{Sink, SinkError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use step::Step;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("dead-letter topic: {0}")]
    DeadLetter(String),
    #[error("Sparkplug state: {0}")]
    Sparkplug(String),
    #[error("rule '{rule}' names unknown action '{action}'")]
    UnknownAction { rule: String, action: String },
}

impl sluice_core::Classify for RouterError {
    fn whose(&self) -> sluice_core::Whose {
        use rdkafka::error::KafkaError;
        use sluice_core::Whose;
        match self {
            // A rule naming a sink that does not exist: nothing changes until the config does.
            RouterError::UnknownAction { .. } => Whose::User,
            // librdkafka refused its own configuration (a bad property, a bad TLS file).
            RouterError::Kafka(KafkaError::ClientCreation(_) | KafkaError::ClientConfig(..)) => {
                Whose::User
            }
            // A sink says whose fault its failure is (a path that is no directory: the user).
            RouterError::Sink(e) => sluice_core::Classify::whose(e),
            RouterError::Kafka(_) | RouterError::DeadLetter(_) | RouterError::Sparkplug(_) => {
                Whose::Outside
            }
        }
    }
}

pub struct Router {
    // Shared so the consume loop can hold a message while the router updates itself.
    consumer: Arc<StreamConsumer<RebalanceContext>>,
    /// Where the consumer's rebalance callbacks queue assignment changes.
    rebalances: RebalanceContext,
    dead_letters: DeadLetters,
    /// The decoder and the rules: a batch's work that is not I/O.
    step: Step,
    /// Where a reloaded rule set arrives; taken between batches.
    control: Arc<reload::RuleControl>,
    sinks: BTreeMap<String, Box<dyn Sink>>,
    offsets: Offsets,
    raw: RawBatch,
    raw_topic: String,
    max_rows: usize,
    max_wait: Duration,
    commit_interval: Duration,
    stats: Arc<Stats>,
    /// When the router last saw itself in the group with no partitions (see `watch_assignment`).
    unassigned_since: Option<Instant>,
    /// Devices retired in the compliance tracker: their messages are dropped (and counted).
    retired: Arc<RetiredDevices>,
    /// Offsets routers died on, shared by every restart of this router.
    poison: Arc<poison::PoisonWatch>,
    /// Sparkplug edge nodes' aliases, saved and restored with their partitions.
    sparkplug: Option<sparkplug::SparkplugLog>,
}

/// How long a router may sit in the group with no partitions before it rejoins.
const REJOIN_AFTER: Duration = Duration::from_secs(30);

impl Router {
    pub fn new(
        config: &Config,
        bootstrap: &str,
        rules: RuleSet,
        control: Arc<reload::RuleControl>,
        sinks: BTreeMap<String, Box<dyn Sink>>,
        stats: Arc<Stats>,
    ) -> Result<Self, RouterError> {
        for rule in rules.rules() {
            let named = rule.actions.iter().chain(&rule.error_action);
            if let Some(action) = named.into_iter().find(|a| !sinks.contains_key(*a)) {
                return Err(RouterError::UnknownAction {
                    rule: rule.name.clone(),
                    action: action.clone(),
                });
            }
        }
        if let Some(action) = rules
            .fallback_action
            .as_ref()
            .filter(|a| !sinks.contains_key(*a))
        {
            return Err(RouterError::UnknownAction {
                rule: FALLBACK_RULE.to_string(),
                action: action.clone(),
            });
        }
        let rebalances = RebalanceContext::new(&config.kafka.raw_topic);
        let consumer: StreamConsumer<RebalanceContext> =
            sluice_kafka::router_consumer(config, bootstrap)
                .create_with_context(rebalances.clone())?;
        consumer.subscribe(&[&config.kafka.raw_topic])?;
        let dead_letters = DeadLetters::new(config, bootstrap, stats.clone())?;
        let formats = PayloadFormats::of(&config.payloads);
        let sparkplug = sparkplug::SparkplugLog::start(config, bootstrap, formats.births())?;
        Ok(Self {
            consumer: Arc::new(consumer),
            rebalances,
            dead_letters,
            step: Step::new(
                BatchDecoder::with_limits((&config.router.decode).into()).with_formats(formats),
                rules,
            ),
            control,
            sinks,
            offsets: Offsets::default(),
            raw: RawBatch::default(),
            raw_topic: config.kafka.raw_topic.clone(),
            max_rows: config.router.batch.max_rows,
            max_wait: Duration::from_millis(config.router.batch.max_wait_ms),
            commit_interval: Duration::from_millis(config.router.commit_interval_ms),
            stats,
            unassigned_since: None,
            retired: Arc::default(),
            poison: Arc::default(),
            sparkplug,
        })
    }

    /// Drops the messages of these devices before decoding (retired in the compliance tracker).
    pub fn with_retired(mut self, retired: Arc<RetiredDevices>) -> Self {
        self.retired = retired;
        self
    }

    /// Shares what this router learns about failing offsets with the routers that replace it.
    pub fn with_poison_watch(mut self, watch: Arc<poison::PoisonWatch>) -> Self {
        self.poison = watch;
        self
    }

    /// Consumes until `shutdown`, then processes what it holds, checkpoints and returns.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), RouterError> {
        if let Some(failures) = self.poison.recover() {
            events::SuspectStart {
                failures,
                isolate_after: poison::ISOLATE_AFTER,
            }
            .emit();
        }
        let mut next_checkpoint = Instant::now() + self.commit_interval;
        let mut batch_deadline: Option<Instant> = None;
        let consumer = self.consumer.clone();
        loop {
            let wake = batch_deadline.map_or(next_checkpoint, |d| d.min(next_checkpoint));
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(wake) => {
                    self.apply_rebalances()?;
                    self.process_batch().await?;
                    batch_deadline = None;
                    if Instant::now() >= next_checkpoint {
                        self.checkpoint(CommitMode::Async).await?;
                        self.watch_assignment();
                        next_checkpoint = Instant::now() + self.commit_interval;
                    }
                }
                msg = consumer.recv() => match msg {
                    Ok(m) => {
                        self.apply_rebalances()?;
                        self.accept(&m);
                        batch_deadline.get_or_insert_with(|| Instant::now() + self.max_wait);
                        if self.raw.len() >= self.max_rows {
                            self.process_batch().await?;
                            batch_deadline = None;
                        }
                    }
                    Err(e) => events::ConsumerFailed { error: &e }.emit(),
                },
            }
        }
        self.apply_rebalances()?;
        self.process_batch().await?;
        self.checkpoint(CommitMode::Sync).await?;
        tracing::info!("router stopped after a final checkpoint");
        Ok(())
    }

    /// Rejoins the group after `REJOIN_AFTER` with no partitions. A coordinator can leave a
    /// member there for good: tansu, when the previous leader died mid-rebalance (a router
    /// killed and restarted), completes the generation with an empty assignment and never
    /// rebalances again. An idle extra router (more routers than partitions) also rejoins
    /// every `REJOIN_AFTER`, which cooperative rebalancing makes cheap for the others.
    fn watch_assignment(&mut self) {
        let assigned = self.consumer.assignment().map_or(0, |a| a.count());
        if assigned > 0 {
            self.unassigned_since = None;
            return;
        }
        let since = *self.unassigned_since.get_or_insert_with(Instant::now);
        if since.elapsed() < REJOIN_AFTER {
            return;
        }
        events::GroupRejoined {
            waited: REJOIN_AFTER,
        }
        .emit();
        self.consumer.unsubscribe();
        if let Err(e) = self.consumer.subscribe(&[&self.raw_topic]) {
            events::RejoinFailed { error: &e }.emit();
        }
        self.unassigned_since = None;
    }

    /// Adds one Kafka message to the current batch (or the DLQ if it breaks the contract).
    fn accept(&mut self, m: &rdkafka::message::BorrowedMessage<'_>) {
        let (partition, offset) = (m.partition(), m.offset());
        self.offsets.observe(partition, offset);
        events::RecordConsumed { stats: &self.stats }.emit();
        let headers = m
            .headers()
            .into_iter()
            .flat_map(|h| h.iter().map(|h| (h.key, h.value)));
        let timestamp = m.timestamp().to_millis();
        match TelemetryRecord::from_kafka(m.key(), timestamp, headers, m.payload()) {
            Ok(rec) if self.retired.contains(&rec.device_id) => {
                events::RetiredMessageDropped.emit()
            }
            Ok(rec) => self.raw.push(&rec, partition, offset),
            Err(e) => {
                let key = m
                    .key()
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .unwrap_or("");
                let source = (self.raw_topic.as_str(), partition, offset);
                self.dead_letters.send(
                    key,
                    m.payload().unwrap_or_default(),
                    &e.to_string(),
                    source,
                    None,
                );
            }
        }
    }

    async fn process_batch(&mut self) -> Result<(), RouterError> {
        // The batch boundary: the only place a reloaded rule set takes over.
        if let Some(rules) = self.control.take() {
            self.step.set_rules(rules);
        }
        if self.raw.is_empty() {
            return Ok(());
        }
        let known = self.poison.known_in(&self.raw);
        if !known.is_empty() {
            for (i, _) in &known {
                let (partition, offset) = (self.raw.partition(*i), self.raw.offset(*i));
                events::PoisonRedelivered { partition, offset }.emit();
            }
            self.dead_letter_poison(&known);
            if self.raw.is_empty() {
                return Ok(());
            }
        }
        let isolate = self.poison.begin(&self.raw);
        if isolate {
            self.isolate_poison();
        }
        // Sinks write and fsync synchronously: off the runtime's other tasks.
        sluice_common::blocking(|| process::process(self))?;
        self.poison.end();
        self.raw.clear();
        sluice_common::blocking(|| process::route_failures(self))?;
        Ok(())
    }

    /// Bisects the current batch for the records that fail on their own, dead-letters them
    /// and keeps the rest.
    fn isolate_poison(&mut self) {
        let found = isolate::find_poison(&mut self.step, &self.raw);
        let raw = &self.raw;
        for (i, why) in &found {
            events::PoisonIsolated {
                partition: raw.partition(*i),
                offset: raw.offset(*i),
                device: raw.device_id(*i),
                why,
            }
            .emit();
            self.poison.isolated(raw.partition(*i), raw.offset(*i), why);
        }
        self.dead_letter_poison(&found);
    }

    /// Sends the records `found` (index, why) of the batch to the dead-letter topic and takes
    /// them out of the batch.
    fn dead_letter_poison(&mut self, found: &[(usize, String)]) {
        let raw = &self.raw;
        for (i, why) in found {
            let reason = format!(
                "poison: the router failed {} times on this batch and on this message alone: {why}",
                poison::ISOLATE_AFTER
            );
            let source = (self.raw_topic.as_str(), raw.partition(*i), raw.offset(*i));
            self.dead_letters.send(
                raw.device_id(*i),
                raw.payload(*i),
                &reason,
                source,
                Some(raw.topic(*i)),
            );
        }
        if !found.is_empty() {
            let bad: std::collections::HashSet<usize> = found.iter().map(|(i, _)| *i).collect();
            self.raw = self
                .raw
                .subset((0..self.raw.len()).filter(|i| !bad.contains(i)));
        }
    }

    /// Sinks durable, dead letters confirmed, then commit.
    async fn checkpoint(&mut self, mode: CommitMode) -> Result<(), RouterError> {
        let started = std::time::Instant::now();
        self.apply_rebalances()?;
        // Failed deliveries first, so their error-action rows are made durable below.
        sluice_common::blocking(|| -> Result<(), RouterError> {
            process::route_failures(self)?;
            for sink in self.sinks.values_mut() {
                sink.checkpoint()?;
            }
            if let Some(log) = &self.sparkplug {
                log.checkpoint()?;
            }
            Ok(())
        })?;
        self.dead_letters.flush().await?;
        crash_before_commit_hook();
        if let Some(tpl) = self.offsets.to_commit(&self.raw_topic)? {
            match self.consumer.commit(&tpl, mode) {
                Ok(()) => self.offsets.committed(),
                Err(e) => events::CommitFailed { error: &e }.emit(),
            }
        }
        events::CheckpointDone {
            took: started.elapsed(),
        }
        .emit();
        Ok(())
    }
}

/// Fault injection (tests only): with `SLUICE_FAULT_ABORT_BEFORE_COMMIT=N`, the process aborts
/// at its N-th checkpoint after the sinks made their output durable and before the Kafka
/// commit — the crash window in which a partition's next owner replays records whose rows
/// are already in the output, which a `kill -9` from outside rarely hits. Unset (production),
/// a checkpoint pays one atomic load.
fn crash_before_commit_hook() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static AT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let at = AT.get_or_init(|| {
        std::env::var("SLUICE_FAULT_ABORT_BEFORE_COMMIT")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if let Some(at) = at {
        if SEEN.fetch_add(1, Ordering::Relaxed) + 1 == *at {
            eprintln!("fault injection: aborting after the sinks' checkpoint, before the commit");
            std::process::abort();
        }
    }
}
