//! An object store (S3 and S3-compatible stores, GCS, Azure Blob) through `object_store`.
//!
//! Open files are written in a local staging directory under `data_dir`. A finished file is
//! uploaded to `<prefix>/_sluice/staging/p<partition>/<name>` (multipart past 8 MiB: an
//! object appears only when its upload completes, so a crash mid-upload leaves no partial
//! object), the ledger is a single PUT (atomic: readers see the old or the new one), and
//! publishing is the store's rename (server-side copy, then delete of the staged object), so
//! the final object too appears whole or not at all. Recovery *lists* the staging prefix
//! rather than probing keys (some S3-compatible servers answer a HEAD on a missing key with a
//! 500).
//!
//! Credentials come from the standard environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`), never the
//! config; `storage_options` carries non-secret settings such as `endpoint`.

use super::{Store, StoreError};
use futures::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Below this a file goes up in one PUT, above it as a multipart upload of such parts.
const PART_BYTES: usize = 8 * 1024 * 1024;

pub struct Bucket {
    url: url::Url,
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    staging: PathBuf,
    /// The sink is synchronous (the router calls it in a blocking section); object-store
    /// calls are async, so they run here and the sink waits for their answer.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Bucket {
    /// A runtime must not be dropped (blocking) inside another one: the router drops its sinks
    /// in async code.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Builds the client for `url` from the environment plus `options`.
pub(crate) fn client(
    url: &url::Url,
    options: &BTreeMap<String, String>,
) -> Result<Arc<dyn ObjectStore>, String> {
    use object_store::aws::AmazonS3Builder;
    use object_store::azure::MicrosoftAzureBuilder;
    use object_store::gcp::GoogleCloudStorageBuilder;
    let bad = |k: &str| format!("storage_options.{k}: not a setting of this store");
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => {
            let mut b = AmazonS3Builder::from_env().with_url(url.as_str());
            for (k, v) in options {
                b = b.with_config(k.parse().map_err(|_| bad(k))?, v);
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        "gs" => {
            let mut b = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
            for (k, v) in options {
                b = b.with_config(k.parse().map_err(|_| bad(k))?, v);
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        "az" | "abfs" | "abfss" => {
            let mut b = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
            for (k, v) in options {
                b = b.with_config(k.parse().map_err(|_| bad(k))?, v);
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        other => return Err(format!("unsupported scheme '{other}'")),
    };
    Ok(store)
}

impl Bucket {
    /// Connects to `url` (nothing is sent until the first write) and empties `staging`: files
    /// left there by a crash were never uploaded, and their records are replayed.
    pub fn open(
        url: url::Url,
        options: &BTreeMap<String, String>,
        staging: PathBuf,
    ) -> Result<Self, StoreError> {
        let store = client(&url, options).map_err(|e| StoreError::new("open", &url, e))?;
        Self::with_client(url, store, staging)
    }

    /// A bucket reached through an already built client (`url` names it in logs and gives
    /// the prefix).
    pub fn with_client(
        url: url::Url,
        store: Arc<dyn ObjectStore>,
        staging: PathBuf,
    ) -> Result<Self, StoreError> {
        let prefix =
            Key::from_url_path(url.path()).map_err(|e| StoreError::new("open", &url, e))?;
        let _ = std::fs::remove_dir_all(&staging);
        sluice_common::fs::create_dir_durably(&staging)
            .map_err(|e| StoreError::new("create", staging.display(), e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sluice-object-store")
            .enable_all()
            .build()
            .map_err(|e| StoreError::new("start", "object-store runtime", e))?;
        Ok(Self {
            url,
            store,
            prefix,
            staging,
            runtime: Some(runtime),
        })
    }

    /// Runs one object-store call to completion from synchronous code (any thread, inside a
    /// Tokio runtime or not).
    fn wait<T: Send + 'static, E: std::fmt::Display + Send + 'static>(
        &self,
        action: &'static str,
        name: &Path,
        call: impl std::future::Future<Output = Result<T, E>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if let Some(runtime) = &self.runtime {
            runtime.spawn(async move {
                let _ = tx.send(call.await.map_err(|e| e.to_string()));
            });
        }
        let answer = rx
            .recv()
            .unwrap_or_else(|_| Err("object-store runtime stopped".into()));
        answer.map_err(|e| StoreError::new(action, self.show(name), e))
    }

    fn key(&self, name: &Path) -> Result<Key, StoreError> {
        let text = name.to_string_lossy();
        let joined = match self.prefix.as_ref() {
            "" => text.to_string(),
            p => format!("{p}/{text}"),
        };
        Key::parse(&joined).map_err(|e| StoreError::new("name", &joined, e))
    }

    /// The name relative to the prefix of a key listed under it.
    fn relative(&self, key: &Key) -> PathBuf {
        let parts: Vec<String> = match key.prefix_match(&self.prefix) {
            Some(parts) => parts.map(|p| p.as_ref().to_string()).collect(),
            None => vec![key.to_string()],
        };
        PathBuf::from(parts.join("/"))
    }
}

/// Uploads a local file: one PUT when small, else a multipart upload that is aborted if
/// anything fails (an incomplete upload is never visible; a lifecycle rule reaps what a crash
/// leaves, see README).
async fn upload(store: Arc<dyn ObjectStore>, key: Key, local: PathBuf) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::File::open(&local)
        .await
        .map_err(|e| e.to_string())?;
    let mut writer = object_store::buffered::BufWriter::with_capacity(store, key, PART_BYTES);
    match tokio::io::copy(&mut file, &mut writer).await {
        Err(e) => {
            let _ = writer.abort().await;
            Err(e.to_string())
        }
        // Not aborted when the completion fails: `BufWriter::abort` panics once shutdown has
        // begun ("Already shut down", seen with the store down mid-upload). The multipart
        // upload left open is never visible; the bucket's lifecycle rule reaps it.
        Ok(_) => writer.shutdown().await.map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store gone while a file goes up: an error the router retries, never a panic on the
    /// object-store runtime (which stopped the runtime and every later upload with it).
    #[tokio::test]
    async fn an_upload_to_a_store_that_is_down_is_an_error_not_a_panic() {
        let store = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name("lake")
            .with_region("us-east-1")
            .with_access_key_id("key")
            .with_secret_access_key("not-a-secret")
            .with_endpoint("http://127.0.0.1:9")
            .with_allow_http(true)
            .with_retry(object_store::RetryConfig {
                max_retries: 0,
                ..Default::default()
            })
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("part.parquet");
        std::fs::write(&local, b"rows").unwrap();
        let uploading = upload(Arc::new(store), Key::from("t/part.parquet"), local);
        let failed = tokio::spawn(uploading).await.expect("no panic");
        assert!(failed.is_err());
    }
}

impl Store for Bucket {
    fn local_root(&self) -> &Path {
        &self.staging
    }

    fn stage(&self, partition: i32, local: &Path) -> Result<PathBuf, StoreError> {
        let file_name = local.file_name().unwrap_or_default().to_string_lossy();
        let staged = PathBuf::from(format!("_sluice/staging/p{partition}/{file_name}"));
        let key = self.key(&staged)?;
        let path = self.staging.join(local);
        self.wait(
            "upload",
            &staged,
            upload(self.store.clone(), key, path.clone()),
        )?;
        let _ = std::fs::remove_file(&path);
        Ok(staged)
    }

    fn read_ledger(&self, partition: i32) -> Result<Option<Vec<u8>>, StoreError> {
        let name = super::ledger_name(partition);
        let key = self.key(&name)?;
        let store = self.store.clone();
        self.wait("read", &name, async move {
            match store.get(&key).await {
                Ok(r) => r.bytes().await.map(|b| Some(b.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn write_ledger(&self, partition: i32, bytes: &[u8]) -> Result<(), StoreError> {
        let name = super::ledger_name(partition);
        let key = self.key(&name)?;
        let (store, payload) = (self.store.clone(), bytes.to_vec());
        self.wait("write", &name, async move {
            store.put(&key, payload.into()).await
        })
        .map(|_| ())
    }

    fn publish(&self, staged: &Path, final_name: &Path) -> Result<(), StoreError> {
        let (from, to) = (self.key(staged)?, self.key(final_name)?);
        let store = self.store.clone();
        self.wait("publish", final_name, async move {
            match store.rename(&from, &to).await {
                // Moved by an earlier publish that a crash cut short after the copy.
                Err(object_store::Error::NotFound { .. }) => store.head(&to).await.map(|_| ()),
                other => other,
            }
        })
    }

    fn staged(&self, partition: i32) -> Result<Vec<PathBuf>, StoreError> {
        let dir = PathBuf::from(format!("_sluice/staging/p{partition}"));
        let prefix = self.key(&dir)?;
        let store = self.store.clone();
        let listed: Vec<Key> = self.wait("list", &dir, async move {
            let objects: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
            Ok::<_, object_store::Error>(objects.into_iter().map(|o| o.location).collect())
        })?;
        Ok(listed.iter().map(|k| self.relative(k)).collect())
    }

    fn remove(&self, staged: &Path) -> Result<(), StoreError> {
        let key = self.key(staged)?;
        let store = self.store.clone();
        self.wait("remove", staged, async move {
            match store.delete(&key).await {
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                other => other,
            }
        })
    }

    fn show(&self, name: &Path) -> String {
        format!(
            "{}/{}",
            self.url.as_str().trim_end_matches('/'),
            name.display()
        )
    }
}
