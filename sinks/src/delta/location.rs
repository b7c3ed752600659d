//! Where Delta tables live, and the runtime their async calls run on.
//!
//! A local directory is a `file://` URL, which `deltalake-core` serves itself. For `s3://`,
//! `gs://` and `az://` tables Sluice registers its own object-store factory (the client the
//! Parquet sink already builds: credentials from the standard environment, non-secret
//! `storage_options` such as `endpoint`) and the default log store, whose commits are
//! put-if-absent writes of `_delta_log/<version>.json` (`If-None-Match: *` on S3). That write
//! is the fence between two routers: only one of them creates a given version. No lock
//! service (DynamoDB) is needed, and the AWS SDK is not built.

use deltalake_core::logstore::{
    default_logstore, logstore_factories, object_store_factories, LogStore, LogStoreFactory,
    ObjectStoreFactory, ObjectStoreRef, StorageConfig,
};
use deltalake_core::{DeltaResult, DeltaTableError, Path};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Once};
use url::Url;

/// The object-store schemes Sluice registers with `deltalake-core`.
const SCHEMES: &[&str] = &["s3", "s3a", "gs", "az", "abfs", "abfss"];

struct SluiceStores;

impl ObjectStoreFactory for SluiceStores {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        let options: BTreeMap<String, String> = config.raw.clone().into_iter().collect();
        let store = crate::parquet::store::object::client(url, &options)
            .map_err(|e| DeltaTableError::InvalidTableLocation(format!("{url}: {e}")))?;
        Ok((store, Path::from(url.path())))
    }
}

impl LogStoreFactory for SluiceStores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

/// Registers the object-store schemes once per process.
pub fn register_stores() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let factory = Arc::new(SluiceStores);
        for scheme in SCHEMES {
            let Ok(url) = Url::parse(&format!("{scheme}://")) else {
                continue;
            };
            object_store_factories().insert(url.clone(), factory.clone());
            logstore_factories().insert(url, factory.clone());
        }
    });
}

/// The URL of `rule`'s table under the sink's root (a directory or an object-store URL).
pub fn table_url(root: &Url, rule: &str) -> Result<Url, String> {
    let mut url = root.clone();
    url.path_segments_mut()
        .map_err(|()| format!("{root} cannot hold tables"))?
        .pop_if_empty()
        .push(rule);
    Ok(url)
}

/// A sink's root as a URL: a directory becomes `file://` (created if missing).
pub fn root_url(location: &sluice_config::ParquetLocation) -> Result<Url, String> {
    match location {
        sluice_config::ParquetLocation::Directory(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
            let abs = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            Url::from_directory_path(&abs).map_err(|()| format!("{}: not absolute", abs.display()))
        }
        sluice_config::ParquetLocation::ObjectStore(url) => Ok(url.clone()),
    }
}

/// The storage options handed to `deltalake-core` (they reach [`SluiceStores`]).
pub fn options(set: &BTreeMap<String, String>) -> HashMap<String, String> {
    set.clone().into_iter().collect()
}

/// The Tokio runtime a synchronous sink drives `deltalake-core` on.
pub struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    pub fn new() -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sluice-delta")
            .enable_all()
            .build()?;
        Ok(Self(Some(rt)))
    }

    /// Runs `work` to completion from synchronous code. Inside another runtime (the router
    /// calls sinks in a blocking section of its own) it runs on a scoped thread, because a
    /// runtime cannot be entered from a thread that is already in one.
    pub fn block<F>(&self, work: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        let Some(rt) = &self.0 else {
            unreachable!("the runtime is only taken on drop")
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return rt.block_on(work);
        }
        std::thread::scope(|s| match s.spawn(|| rt.block_on(work)).join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    }
}

impl Runtime {
    /// Makes this runtime the current one until the guard drops, for work that may spawn
    /// (a writer dropping its open files aborts their uploads in the background).
    pub fn enter(&self) -> Option<tokio::runtime::EnterGuard<'_>> {
        self.0.as_ref().map(|rt| rt.enter())
    }
}

impl Drop for Runtime {
    /// Dropped inside async code (the router drops its sinks there): no blocking shutdown.
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
