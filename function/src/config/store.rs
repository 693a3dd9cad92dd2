//! The configuration, cached with a TTL so a rotated key is picked up without a
//! redeploy. A failed first load is remembered for [`FAILURE_RETRY`]: during a Secrets
//! Manager outage requests are answered at once instead of each waiting out the
//! timeout, and Secrets Manager is asked again a few seconds later. When a refresh
//! fails after a good load, the last good configuration keeps serving (the failure is
//! logged) and the refresh is retried after [`STALE_RETRY`], so a Secrets Manager blip
//! neither takes the proxy down nor makes every request wait for it.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::source::{ConfigSource, LoadError};
use super::{ProxyConfig, Timeouts};

pub const STALE_RETRY: Duration = Duration::from_secs(15);

/// How long a failed load (with no good configuration to fall back on) is answered from
/// memory before the source is asked again.
pub const FAILURE_RETRY: Duration = Duration::from_secs(2);

pub struct ConfigStore {
    source: ConfigSource,
    base_url: String,
    ttl: Duration,
    /// The configuration and when to refresh it.
    cached: RwLock<Option<(Instant, Arc<ProxyConfig>)>>,
    /// The last failed load and until when it stands.
    failed: RwLock<Option<(Instant, LoadError)>>,
    /// One refresh at a time; the others wait for its result instead of piling on.
    refreshing: tokio::sync::Mutex<()>,
}

impl ConfigStore {
    pub fn new(source: ConfigSource, base_url: impl Into<String>, ttl: Duration) -> Self {
        Self {
            source,
            base_url: base_url.into(),
            ttl,
            cached: RwLock::new(None),
            failed: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    pub fn source_name(&self) -> String {
        self.source.name()
    }

    fn cached(&self) -> Option<(Instant, Arc<ProxyConfig>)> {
        self.cached.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn fresh(&self) -> Option<Arc<ProxyConfig>> {
        self.cached()
            .filter(|(due, _)| Instant::now() < *due)
            .map(|(_, c)| c)
    }

    pub async fn get(&self) -> Result<Arc<ProxyConfig>, LoadError> {
        if let Some(config) = self.fresh() {
            return Ok(config);
        }
        if let Some(error) = self.recent_failure() {
            return Err(error);
        }
        let _turn = self.refreshing.lock().await;
        if let Some(config) = self.fresh() {
            return Ok(config);
        }
        if let Some(error) = self.recent_failure() {
            return Err(error);
        }
        let previous = self.cached().map(|(_, c)| c);
        let timeout = previous
            .as_ref()
            .map_or(Timeouts::default(), |c| c.timeouts)
            .secrets_manager;
        match self.source.load(&self.base_url, timeout).await {
            Ok(config) => {
                self.keep(config.clone(), self.ttl);
                Ok(config)
            }
            Err(error) => match previous {
                Some(stale) => {
                    tracing::warn!(error = %error, "configuration refresh failed; serving the last good configuration");
                    self.keep(stale.clone(), self.ttl.min(STALE_RETRY));
                    Ok(stale)
                }
                None => {
                    *self.failed.write().unwrap_or_else(|p| p.into_inner()) =
                        Some((Instant::now() + FAILURE_RETRY, error.clone()));
                    Err(error)
                }
            },
        }
    }

    fn recent_failure(&self) -> Option<LoadError> {
        let failed = self.failed.read().unwrap_or_else(|p| p.into_inner());
        failed
            .as_ref()
            .filter(|(until, _)| Instant::now() < *until)
            .map(|(_, error)| error.clone())
    }

    fn keep(&self, config: Arc<ProxyConfig>, for_how_long: Duration) {
        *self.cached.write().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now() + for_how_long, config));
    }
}
