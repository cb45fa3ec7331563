//! [`ConfigTokenizers`]: the one shared token counter, using the tokenizer each model is
//! configured with.

use std::collections::HashMap;
use std::sync::Arc;

use llm_tower_core::RequestBody;
use llm_tower_layers::token_count::{Encoding, Heuristic, TokenCount, TokenCounter, Tokenizers};

use crate::catalog::Catalog;
use crate::validate::{ProviderSpec, TokenizerKind};

/// Counts tokens with the tokenizer configured per model.
///
/// Names are looked up as the stack sees them: `provider/model`, a bare model name served
/// by one provider, or a route alias (its targets' tokenizer when they all share one, the
/// heuristic otherwise). Unknown names fall back to [`Tokenizers`] (exact for OpenAI model
/// names, the heuristic for the rest).
#[derive(Debug, Clone, Default)]
pub struct ConfigTokenizers {
    by_name: HashMap<String, TokenizerKind>,
}

impl ConfigTokenizers {
    pub(crate) fn new(providers: &[ProviderSpec], catalog: &Catalog) -> Self {
        let mut by_name = HashMap::new();
        let mut by_target = HashMap::new();
        for p in providers {
            for m in &p.models {
                by_name.insert(format!("{}/{}", p.name, m.name), m.tokenizer);
                if catalog.is_unique_bare(&m.name) {
                    by_name.insert(m.name.clone(), m.tokenizer);
                }
                by_target.insert(m.target, m.tokenizer);
            }
        }
        for (alias, targets) in &catalog.routes {
            let kinds: Vec<TokenizerKind> = targets
                .iter()
                .filter_map(|t| by_target.get(t).copied())
                .collect();
            let kind = match kinds.split_first() {
                Some((first, rest)) if rest.iter().all(|k| k == first) => *first,
                _ => TokenizerKind::Heuristic,
            };
            by_name.insert(alias.clone(), kind);
        }
        ConfigTokenizers { by_name }
    }

    /// A counter for one provider: bare model names are looked up within that provider first.
    pub(crate) fn for_provider(self: &Arc<Self>, provider: &str) -> ProviderTokenizers {
        ProviderTokenizers {
            provider: provider.to_owned(),
            inner: Arc::clone(self),
        }
    }

    /// The tokenizer name used for `model` (`o200k_base`, `cl100k_base`, `heuristic`).
    pub fn tokenizer_for(&self, model: &str) -> &'static str {
        match self.kind(model) {
            Some(k) => k.name(),
            None => Encoding::for_model(model).map_or("heuristic", Encoding::name),
        }
    }

    fn kind(&self, model: &str) -> Option<TokenizerKind> {
        self.by_name.get(model).copied()
    }

    fn count_with(kind: Option<TokenizerKind>, model: &str, text: &str) -> TokenCount {
        match kind {
            Some(TokenizerKind::O200k) => TokenCount::exact(Encoding::O200kBase.count(text)),
            Some(TokenizerKind::Cl100k) => TokenCount::exact(Encoding::Cl100kBase.count(text)),
            Some(TokenizerKind::Heuristic) => TokenCount::estimate(Heuristic::estimate(text)),
            None => Tokenizers::new().count_text(model, text),
        }
    }
}

impl TokenCounter for ConfigTokenizers {
    fn count_text(&self, model: &str, text: &str) -> TokenCount {
        ConfigTokenizers::count_with(self.kind(model), model, text)
    }

    fn count_prompt(&self, body: &RequestBody) -> TokenCount {
        let model = match body {
            RequestBody::Chat(c) => c.model.as_str(),
            RequestBody::Completion(c) => c.model.as_str(),
            RequestBody::Embeddings(e) => e.model.as_str(),
        };
        match self.kind(model) {
            // Resolve the tokenizer once per request, not once per message.
            Some(kind) => {
                let count = KindCounter(kind).count_prompt(body);
                match (kind, body) {
                    (
                        TokenizerKind::Heuristic,
                        RequestBody::Chat(_) | RequestBody::Completion(_),
                    ) => count.into_estimate(),
                    _ => count,
                }
            }
            None => Tokenizers::new().count_prompt(body),
        }
    }
}

/// A counter that always uses one tokenizer.
#[derive(Debug, Clone, Copy)]
struct KindCounter(TokenizerKind);

impl TokenCounter for KindCounter {
    fn count_text(&self, model: &str, text: &str) -> TokenCount {
        ConfigTokenizers::count_with(Some(self.0), model, text)
    }
}

/// [`ConfigTokenizers`] seen from one provider: `model` is first looked up as
/// `provider/model`. Given to that provider's mock, which receives bare model names.
#[derive(Debug, Clone)]
pub(crate) struct ProviderTokenizers {
    provider: String,
    inner: Arc<ConfigTokenizers>,
}

impl ProviderTokenizers {
    fn kind(&self, model: &str) -> Option<TokenizerKind> {
        self.inner
            .kind(&format!("{}/{model}", self.provider))
            .or_else(|| self.inner.kind(model))
    }
}

impl TokenCounter for ProviderTokenizers {
    fn count_text(&self, model: &str, text: &str) -> TokenCount {
        ConfigTokenizers::count_with(self.kind(model), model, text)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use llm_tower_core::{ChatRequest, Message, UsageSource};

    fn counter() -> ConfigTokenizers {
        let mut by_name = HashMap::new();
        by_name.insert("mock/mock-large".to_owned(), TokenizerKind::Heuristic);
        by_name.insert("mock-large".to_owned(), TokenizerKind::Heuristic);
        by_name.insert("mock/gpt-4o-mini".to_owned(), TokenizerKind::O200k);
        by_name.insert("default".to_owned(), TokenizerKind::O200k);
        ConfigTokenizers { by_name }
    }

    #[test]
    fn uses_the_configured_tokenizer_per_name() {
        let c = counter();
        let text = "Hello there, how are you today?";
        let exact = Encoding::O200kBase.count(text);
        assert_eq!(c.count_text("default", text), TokenCount::exact(exact));
        assert_eq!(
            c.count_text("mock/gpt-4o-mini", text),
            TokenCount::exact(exact)
        );
        assert_eq!(
            c.count_text("mock-large", text).source,
            UsageSource::Estimated
        );
        // Unknown names fall back to the default tokenizers.
        assert!(c.count_text("gpt-4o", text).is_exact());
        assert!(!c.count_text("llama3", text).is_exact());
        assert_eq!(c.tokenizer_for("mock-large"), "heuristic");
        assert_eq!(c.tokenizer_for("gpt-4"), "cl100k_base");
    }

    #[test]
    fn prompt_counts_follow_the_alias() {
        let c = counter();
        let body = RequestBody::Chat(ChatRequest::new("default", vec![Message::user("Hi there")]));
        assert!(c.count_prompt(&body).is_exact());
        let body = RequestBody::Chat(ChatRequest::new(
            "mock-large",
            vec![Message::user("Hi there")],
        ));
        assert!(!c.count_prompt(&body).is_exact());
    }

    #[test]
    fn provider_view_prefers_its_own_models() {
        let c = Arc::new(counter());
        let p = c.for_provider("mock");
        assert!(p.count_text("gpt-4o-mini", "hello world").is_exact());
        assert!(!p.count_text("mock-large", "hello world").is_exact());
    }
}
