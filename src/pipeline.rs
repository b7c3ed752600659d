//! `sluice run`: start the roles asked for, run until told to stop, stop in order.

use crate::health::Health;
use crate::supervise::{supervise, StageRun};
use anyhow::Context;
use sluice_common::Stats;
use sluice_config::Config;
use sluice_ingest::front_door::FrontDoor;
use sluice_ingest::gateway::registry::RegistryWriter;
use sluice_processors::rule::devices::DeviceTags;
use sluice_processors::rule::RuleSet;
use sluice_router::reload::Reloader;
use sluice_router::reload::RuleControl;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Which parts of the pipeline this process runs (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub brokers: bool,
    pub ingest: bool,
    pub router: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        brokers: true,
        ingest: true,
        router: true,
    };
}

/// `brokers, ingest, router`: what a log line or a person reads.
impl std::fmt::Display for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts = [
            ("brokers", self.brokers),
            ("ingest", self.ingest),
            ("router", self.router),
        ];
        let on: Vec<&str> = parts
            .iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect();
        f.write_str(&on.join(", "))
    }
}

/// Where the stages connect: the external brokers, or the embedded ones.
pub fn mqtt_address(config: &Config) -> String {
    config
        .mqtt
        .broker
        .clone()
        .unwrap_or_else(|| config.embedded.mqtt_listen.clone())
}

/// Runs until `shutdown` is cancelled; a failing stage is restarted (see [`crate::supervise`]).
/// `health.ready` turns true once every stage asked for is up (ingest subscribed).
pub async fn run(
    config: Config,
    roles: Roles,
    shutdown: CancellationToken,
    stats: Arc<Stats>,
    health: Arc<Health>,
) -> anyhow::Result<()> {
    // Held until the pipeline returns (and by the OS until the process dies).
    let _lock = sluice_common::lock::DataDirLock::acquire(&config.data_dir)?;
    if !config.http.listen.is_empty() {
        crate::http::serve(&config, health.clone(), shutdown.clone()).await?;
    }
    if roles.ingest && config.mqtt.broker.is_none() {
        // The gateway's port in use is a one-line error at start, not a stage restarting.
        crate::ports::check_free(&config.embedded.mqtt_listen, "embedded.mqtt_listen")?;
    }
    if roles.brokers {
        start_brokers(&config).await?;
    }
    let bootstrap = sluice_kafka::bootstrap(&config);
    if roles.ingest || roles.router {
        let (c, b) = (config.clone(), bootstrap.clone());
        tokio::task::spawn_blocking(move || {
            sluice_kafka::preflight(&c, &b, Duration::from_secs(20))
        })
        .await?
        .map_err(|why| {
            if let sluice_kafka::ClientError::Settings(why) = &why {
                // librdkafka refused a setting before connecting: nothing to wait for.
                return anyhow::anyhow!(
                    "the Kafka client settings are refused: {why}. Check [kafka.properties] \
                     and [kafka.security] (a configuration problem: fix it and start again)"
                );
            }
            let hint = match config.kafka.bootstrap {
                None if roles.brokers => {
                    "the embedded Kafka broker of this process did not \
                    answer: see the lines above"
                }
                Some(_) => {
                    "check kafka.bootstrap (or SLUICE_KAFKA_BOOTSTRAP), that the cluster \
                    is up and reachable from here, and [kafka.security]"
                }
                None => {
                    "the embedded Kafka broker is not in this process (--only without \
                    `brokers`): start `sluice run --only brokers` with the same \
                    embedded.kafka_listen, or set kafka.bootstrap"
                }
            };
            anyhow::anyhow!("kafka at {bootstrap} did not answer within 20 s: {why}. {hint}")
        })?;
    }
    if config.kafka.create_topics && (roles.ingest || roles.router || roles.brokers) {
        sluice_kafka::ensure_topics(&config, &bootstrap).await?;
    }
    if roles.ingest || roles.router {
        let monitor = Arc::new(sluice_router::scaling::ScalingMonitor::new(
            &config,
            &bootstrap,
            stats.clone(),
        )?);
        let _ = health.scaling.set(monitor.clone());
        tokio::spawn(monitor.watch(shutdown.clone()));
    }
    sluice_common::Event::emit(crate::events::RolesStarted {
        ingest: roles.ingest,
        gateway: config.mqtt.broker.is_none(),
        router: roles.router,
    });
    let ingest_stop = CancellationToken::new();
    let router_stop = CancellationToken::new();
    let subscribed = match roles.ingest {
        true => Arc::new(FrontDoor::default()),
        false => Arc::new(FrontDoor::up_already()),
    };
    let _ = health.front_door.set(subscribed.clone());
    if config.gateway.device_auth {
        let writer = RegistryWriter::new(
            &sluice_kafka::kafka_client_config(&config, &bootstrap),
            &config.gateway.devices_topic,
        )
        .map_err(|e| anyhow::anyhow!("device registry: {e}"))?;
        let _ = health.devices.set(Arc::new(writer));
    }
    let ingest = match (roles.ingest, config.mqtt.broker.is_some()) {
        (true, false) => {
            let mut start = crate::front::gateway_starter(
                &config,
                &bootstrap,
                &stats,
                &subscribed,
                &ingest_stop,
            )
            .await?;
            let first = start()?;
            let (health, stop) = (health.clone(), ingest_stop.clone());
            Some(tokio::spawn(async move {
                supervise("ingest", &health.stages, stop, first, start).await
            }))
        }
        (true, true) => {
            let mut start = ingest_starter(&config, &bootstrap, &stats, &subscribed, &ingest_stop);
            let first = start()?;
            let (health, stop) = (health.clone(), ingest_stop.clone());
            Some(tokio::spawn(async move {
                supervise("ingest", &health.stages, stop, first, start).await
            }))
        }
        (false, _) => None,
    };
    let router = match roles.router {
        true => {
            let mut start = router_starter(&config, &bootstrap, &stats, &health, &router_stop)?;
            let first = start()?;
            let (health, stop) = (health.clone(), router_stop.clone());
            Some(tokio::spawn(async move {
                supervise("router", &health.stages, stop, first, start).await
            }))
        }
        false => None,
    };
    let startup_deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !subscribed.is_up() && tokio::time::Instant::now() < startup_deadline {
        if shutdown.is_cancelled() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Start-up is over (a front door still down is reported by `readiness` with its reason).
    health.ready.store(true, Ordering::Relaxed);
    tracing::info!(roles = %roles, mqtt = %mqtt_address(&config), kafka = %bootstrap, "sluice running");

    shutdown.cancelled().await;
    health.ready.store(false, Ordering::Relaxed);
    // Order matters: ingest first (it stops reading devices and acknowledges what Kafka
    // confirmed), then the router's checkpoint.
    ingest_stop.cancel();
    if let Some(h) = ingest {
        h.await.context("ingest supervisor")?;
    }
    router_stop.cancel();
    if let Some(h) = router {
        h.await.context("router supervisor")?;
    }
    tracing::info!("sluice stopped cleanly");
    Ok(())
}

/// Starts the embedded Kafka broker when the config names no Kafka.
#[cfg(feature = "embedded")]
async fn start_brokers(config: &Config) -> anyhow::Result<()> {
    crate::embedded::start(config).await
}

#[cfg(not(feature = "embedded"))]
async fn start_brokers(config: &Config) -> anyhow::Result<()> {
    if config.kafka.bootstrap.is_none() {
        anyhow::bail!("this build has no embedded Kafka broker: set kafka.bootstrap");
    }
    Ok(())
}

/// Builds a fresh ingest (producer, MQTT connection) for each (re)start of the stage.
fn ingest_starter(
    config: &Config,
    bootstrap: &str,
    stats: &Arc<Stats>,
    subscribed: &Arc<FrontDoor>,
    stop: &CancellationToken,
) -> impl FnMut() -> anyhow::Result<StageRun> {
    let (config, bootstrap) = (config.clone(), bootstrap.to_string());
    let (stats, subscribed, stop) = (stats.clone(), subscribed.clone(), stop.clone());
    move || {
        let producer = sluice_kafka::create_idempotent_producer(&config, &bootstrap)
            .context("kafka producer")?;
        let forwarder = sluice_ingest::Forwarder::new(producer, &config.kafka, &config.ingest);
        let ready = forwarder.clone();
        let ingest = sluice_ingest::Ingest::new(
            &config.mqtt,
            &config.ingest,
            &mqtt_address(&config),
            forwarder,
            stats.clone(),
        )
        .map_err(sluice_core::Classified::of)?
        .with_front_door(subscribed.clone());
        let stop = stop.clone();
        Ok(Box::pin(async move {
            // Subscribe once Kafka can confirm what the broker hands over (see `ready`).
            if !ready.ready(std::time::Duration::from_secs(10)).await {
                tracing::warn!("Kafka gave the producer no id within 10 s: subscribing anyway");
            }
            ingest
                .run(stop)
                .await
                .map_err(sluice_core::Classified::of)?;
            Ok(())
        }) as StageRun)
    }
}

/// Builds a fresh router (consumer, sinks, rules as last reloaded) for each (re)start. The
/// reloader, the rule hand-over and the poison watch outlive the restarts.
fn router_starter(
    config: &Config,
    bootstrap: &str,
    stats: &Arc<Stats>,
    health: &Arc<Health>,
    stop: &CancellationToken,
) -> anyhow::Result<impl FnMut() -> anyhow::Result<StageRun>> {
    let devices = DeviceTags::default();
    sluice_router::reload::load_devices(config, &devices);
    let rules = compile_rules(config, &config.rules, &devices)?;
    let control = Arc::new(RuleControl::new(&rules, &config.rules));
    let ctx = sluice_sinks::SinkContext {
        stats: stats.clone(),
        kafka: sluice_kafka::kafka_client_config(config, bootstrap),
    };
    let sink_names = config.sinks.keys().cloned().collect();
    if let Some(reloader) = Reloader::new(config, sink_names, devices.clone(), control.clone()) {
        let reloader = Arc::new(reloader);
        let _ = health.rules.set(reloader.clone());
        let interval = Duration::from_millis(config.router.rules_reload_interval_ms);
        tokio::spawn(reloader.watch(config.clone(), interval, stop.clone()));
    }
    let (config, bootstrap) = (config.clone(), bootstrap.to_string());
    let (stats, health, stop) = (stats.clone(), health.clone(), stop.clone());
    let poison = Arc::new(sluice_router::poison::PoisonWatch::default());
    Ok(move || {
        let rules = match control.latest_rules() {
            Some(latest) => compile_rules(&config, &latest, &devices)?,
            None => compile_rules(&config, &config.rules, &devices)?,
        };
        let built =
            sluice_sinks::build_sinks(&config, &ctx).map_err(sluice_core::Classified::of)?;
        health.set_boards(built.boards.clone());
        let router = sluice_router::Router::new(
            &config,
            &bootstrap,
            rules,
            control.clone(),
            built.sinks,
            stats.clone(),
        )
        .map_err(sluice_core::Classified::of)?
        .with_retired(built.boards.retired.clone())
        .with_poison_watch(poison.clone());
        let stop = stop.clone();
        Ok(Box::pin(async move {
            router
                .run(stop)
                .await
                .map_err(sluice_core::Classified::of)?;
            Ok(())
        }) as StageRun)
    })
}

fn compile_rules(
    config: &Config,
    rules: &[sluice_config::RuleConfig],
    devices: &DeviceTags,
) -> anyhow::Result<RuleSet> {
    Ok(RuleSet::compile_with(rules, devices)
        .map_err(|errs| {
            let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("invalid rules:\n{}", lines.join("\n"))
        })?
        .with_fallback(config.router.fallback_action.clone()))
}
