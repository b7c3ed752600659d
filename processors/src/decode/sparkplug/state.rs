//! What the decoder knows of each Sparkplug edge node: the metric names its NBIRTH and its
//! devices' DBIRTHs gave each alias, its last `seq`, and who is online.
//!
//! The state is shared ([`SharedBirths`]) between the decoder, which changes it as messages
//! arrive, and the router's changelog, which saves the edge nodes that changed at each
//! checkpoint (before the offsets are committed) and applies what other routers saved: records
//! are keyed by edge node, so an edge node's BIRTH and DATA share a partition, and whoever owns
//! the partition next restores its aliases before routing its records. Bounded: at most
//! [`MAX_EDGE_NODES`] edge nodes and [`MAX_DEVICES`] devices each (past that, their messages
//! are refused with the reason), since node and device ids come from topics devices choose.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

pub const MAX_EDGE_NODES: usize = 100_000;
pub const MAX_DEVICES: usize = 10_000;

/// A metric as its BIRTH declared it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricDef {
    pub name: String,
    pub datatype: u32,
}

/// Metric definitions by alias.
pub type Aliases = BTreeMap<u64, MetricDef>;

/// One device of an edge node (DBIRTH).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceState {
    pub online: bool,
    pub aliases: Aliases,
}

/// One edge node: its changelog record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeNode {
    /// The raw topic partition its records are in (and its changelog record).
    pub partition: i32,
    pub online: bool,
    /// The last `seq` and the offset of its record: a replayed record (at or below that
    /// offset) neither moves it nor counts a gap. Not restored from the changelog.
    #[serde(skip)]
    pub last_seq: Option<(u8, i64)>,
    pub aliases: Aliases,
    pub devices: BTreeMap<String, DeviceState>,
}

/// Every edge node's state, by `<group>/<edge node>`.
#[derive(Debug, Default)]
pub struct Births {
    nodes: HashMap<String, EdgeNode>,
    /// Edge nodes changed since the last [`Births::take_changed`].
    changed: BTreeSet<String>,
}

/// The state as the decoder and the changelog share it.
#[derive(Debug, Clone, Default)]
pub struct SharedBirths(Arc<Mutex<Births>>);

impl SharedBirths {
    pub fn lock(&self) -> MutexGuard<'_, Births> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The changelog key of an edge node.
pub fn node_key(group: &str, edge: &str) -> String {
    format!("{group}/{edge}")
}

impl Births {
    pub fn node(&self, key: &str) -> Option<&EdgeNode> {
        self.nodes.get(key)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The edge node `key`, made if new (refused past [`MAX_EDGE_NODES`]); `changed`: its
    /// aliases or liveness are about to change, so the next checkpoint saves it.
    pub fn node_mut(
        &mut self,
        key: &str,
        partition: i32,
        changed: bool,
    ) -> Result<&mut EdgeNode, String> {
        if changed {
            self.changed.insert(key.to_string());
        }
        if !self.nodes.contains_key(key) {
            if self.nodes.len() >= MAX_EDGE_NODES {
                return Err(format!(
                    "schema full: {MAX_EDGE_NODES} Sparkplug edge nodes are tracked already; '{key}' is refused"
                ));
            }
            self.nodes.insert(key.to_string(), EdgeNode::default());
        }
        let node = self.nodes.get_mut(key).expect("inserted above");
        node.partition = partition;
        Ok(node)
    }

    /// The edge nodes changed since the last call, as changelog records
    /// `(partition, key, JSON)`.
    pub fn take_changed(&mut self) -> Vec<(i32, String, Option<Vec<u8>>)> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .filter_map(|key| {
                let node = self.nodes.get(&key)?;
                let json = serde_json::to_vec(node).ok()?;
                Some((node.partition, key, Some(json)))
            })
            .collect()
    }

    /// Marks edge nodes changed again (a checkpoint that failed to save them).
    pub fn mark_changed(&mut self, keys: impl IntoIterator<Item = String>) {
        self.changed.extend(keys);
    }

    /// A changelog record another router wrote (`None`: a tombstone). A record that does not
    /// read is ignored: it was not written by this version.
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>) {
        match value.map(serde_json::from_slice::<EdgeNode>) {
            Some(Ok(mut node)) => {
                // Saved at its last BIRTH or DEATH, not at every DATA: its `seq` then is old,
                // and comparing the next message with it would count a gap that is not one.
                // The first message after a hand-over is not checked instead.
                node.last_seq = None;
                self.nodes.insert(key.to_string(), node);
            }
            Some(Err(error)) => {
                let event = crate::events::SparkplugStateUnreadable { key, error: &error };
                sluice_common::Event::emit(event)
            }
            None => {
                self.nodes.remove(key);
            }
        }
    }
}

impl EdgeNode {
    /// Records `seq` of the record at `offset`; true when it is not the one after the last
    /// (a gap: messages lost or reordered before Sluice). A BIRTH restarts the count.
    pub fn saw_seq(&mut self, seq: u8, offset: i64, birth: bool) -> bool {
        let gap = match self.last_seq {
            Some((_, at)) if offset <= at => return false,
            Some((last, _)) => !birth && seq != last.wrapping_add(1),
            None => false,
        };
        self.last_seq = Some((seq, offset));
        gap
    }

    /// The device `name`, made if new (refused past [`MAX_DEVICES`]).
    pub fn device_mut(&mut self, name: &str) -> Result<&mut DeviceState, String> {
        if !self.devices.contains_key(name) && self.devices.len() >= MAX_DEVICES {
            return Err(format!(
                "schema full: the Sparkplug edge node has {MAX_DEVICES} devices already; '{name}' is refused"
            ));
        }
        Ok(self.devices.entry(name.to_string()).or_default())
    }
}
