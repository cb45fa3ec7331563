//! Glue to `llm-tower-config`: an [`AppState`] from a [`BuiltStack`].

use std::sync::Arc;
use std::time::Duration;

use llm_tower_config::{BuiltStack, GatewaySettings};

use crate::responses::{MemoryResponseStore, RedisResponseStore, ResponseStore};

use crate::app::{AppState, AppStateBuilder, ModelInfo, ProviderHealth};
use crate::settings::{LogFormat, Settings};

impl From<&GatewaySettings> for Settings {
    fn from(g: &GatewaySettings) -> Self {
        let defaults = Settings::default();
        Settings {
            listen: g.listen,
            max_body_bytes: g.max_body_bytes,
            header_read_timeout: g.header_read_timeout,
            idle_timeout: g.idle_timeout,
            http2_keep_alive_interval: g.http2_keep_alive_interval,
            http2_keep_alive_timeout: g.http2_keep_alive_timeout,
            max_connections: g.max_connections.unwrap_or(defaults.max_connections),
            body_read_timeout: defaults.body_read_timeout.min(g.request_timeout),
            request_timeout: g.request_timeout,
            shutdown_grace: g.shutdown_grace,
            // The config's probes each take at most 10 s, concurrently.
            health_timeout: Duration::from_secs(12),
            health_cache: defaults.health_cache,
            log_format: match g.log_format {
                llm_tower_config::LogFormat::Json => LogFormat::Json,
                _ => LogFormat::Human,
            },
            log_level: g.log_level.clone(),
        }
    }
}

impl AppState {
    /// A builder with everything a built config provides: its stack, its models (route
    /// aliases and `provider/model` names), its gateway keys (compared by SHA-256 in
    /// constant time) and whether they are required, its cost tracker, its provider
    /// health probes, its settings and the description of the stack.
    ///
    /// Unlisted model names are passed to the stack, which accepts a bare model name served
    /// by one provider and answers unknown names with `model not found` (a 404).
    pub fn builder_from_built(built: &BuiltStack) -> AppStateBuilder {
        let for_auth = built.clone();
        let for_health = built.clone();
        let for_count = built.clone();
        AppState::builder(built.service())
            .models(
                built
                    .models()
                    .into_iter()
                    .map(|m| ModelInfo::new(m.id, m.owned_by)),
            )
            .reject_unlisted_models(false)
            .auth(
                move |token: &str| for_auth.authenticate(token),
                built.auth_required(),
            )
            .tracker(built.tracker().clone())
            .usage_admins(built.admins().iter().cloned())
            .health(move || {
                let built = for_health.clone();
                async move {
                    built
                        .health()
                        .await
                        .into_iter()
                        .map(|h| ProviderHealth {
                            provider: h.name,
                            ok: h.ok,
                            error: h.error,
                        })
                        .collect()
                }
            })
            .token_counter(built.counter())
            .upstream_token_count(move |chat, client| {
                let built = for_count.clone();
                async move { built.count_tokens_upstream(&chat, Some(&client)).await }
            })
            .response_store(Some(match built.redis() {
                // Shared by every instance on the same Redis.
                Some(conn) => Arc::new(RedisResponseStore::new(
                    conn.clone(),
                    Duration::from_secs(3600),
                )) as Arc<dyn ResponseStore>,
                None => Arc::new(MemoryResponseStore::default()),
            }))
            .settings(Settings::from(built.gateway()))
            .describe(built.describe())
    }

    /// [`builder_from_built`](Self::builder_from_built), built (without metrics: add a
    /// Prometheus handle through the builder to serve `/metrics`).
    pub fn from_built(built: &BuiltStack) -> AppState {
        AppState::builder_from_built(built).build()
    }
}
