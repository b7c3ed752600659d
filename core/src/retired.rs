//! Devices retired in the compliance tracker: the router drops their messages (and counts
//! them). Shared between the tracker, which retires, and the router, which reads it per message.

/// Retired devices, read by the router on every message (cheap when empty).
#[derive(Debug, Default)]
pub struct RetiredDevices {
    any: std::sync::atomic::AtomicBool,
    set: std::sync::RwLock<std::collections::HashSet<String>>,
}

impl RetiredDevices {
    pub fn contains(&self, device: &str) -> bool {
        self.any.load(std::sync::atomic::Ordering::Relaxed)
            && self
                .set
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(device)
    }

    pub fn insert(&self, device: &str) {
        let mut set = self.set.write().unwrap_or_else(|p| p.into_inner());
        set.insert(device.to_string());
        self.any.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
