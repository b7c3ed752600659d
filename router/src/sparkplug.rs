//! Sparkplug B alias state that follows its partition.
//!
//! The decoder learns each edge node's aliases from its BIRTH messages (see
//! `sluice_processors::decode::sparkplug`). That state is saved the way the compliance
//! tracker saves devices ([`sluice_sinks::changelog`]): the edge nodes a batch changed are
//! written to `<raw topic>.changelog.sparkplug` at each checkpoint, before the offsets are
//! committed; a router assigned a partition reads that partition's records before routing
//! its records; every router applies what the others write. So after a crash or a
//! rebalance, a DATA message is named by the BIRTH its edge node sent before, even to
//! another router.

use crate::RouterError;
use sluice_config::Config;
use sluice_processors::decode::sparkplug::state::SharedBirths;
use sluice_sinks::changelog::Changelog;

pub struct SparkplugLog {
    changelog: Changelog,
    births: SharedBirths,
}

fn failed(e: String) -> RouterError {
    RouterError::Sparkplug(e)
}

impl SparkplugLog {
    /// `None` when no topic carries Sparkplug B.
    pub fn start(
        config: &Config,
        bootstrap: &str,
        births: SharedBirths,
    ) -> Result<Option<Self>, RouterError> {
        let Some(topic) = config.sparkplug_changelog_topic() else {
            return Ok(None);
        };
        let kafka = sluice_kafka::kafka_client_config(config, bootstrap);
        let applied = births.clone();
        let apply = Box::new(move |key: &str, value: Option<&[u8]>| {
            applied.lock().apply(key, value);
        });
        let changelog = Changelog::start(&topic, &kafka, apply).map_err(failed)?;
        Ok(Some(Self { changelog, births }))
    }

    /// Waits until the partitions' saved edge nodes are applied.
    pub fn assigned(&self, partitions: &[i32]) -> Result<(), RouterError> {
        self.changelog.restore(partitions).map_err(failed)?;
        Ok(())
    }

    pub fn revoked(&self, partitions: &[i32]) {
        self.changelog.release(partitions);
    }

    /// Saves the edge nodes changed since the last checkpoint and waits until Kafka has them.
    pub fn checkpoint(&self) -> Result<usize, RouterError> {
        let changed = self.births.lock().take_changed();
        if changed.is_empty() {
            return Ok(0);
        }
        let births = self.births.clone();
        let again = changed
            .iter()
            .map(|(_, k, _)| k.clone())
            .collect::<Vec<_>>();
        self.changelog.checkpoint(changed).map_err(|e| {
            // Not saved: the next checkpoint tries these edge nodes again.
            births.lock().mark_changed(again);
            failed(e)
        })
    }
}
