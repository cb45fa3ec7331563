//! Which names a request may use, and what they resolve to.
//!
//! A request names a route alias (`"default"`), a `provider/model` (`"openai/gpt-4o"`), or a
//! bare model name that exactly one provider serves (`"gpt-4o-mini"`). Aliases win over
//! bare names. Model names may themselves contain `/` (`vllm/meta-llama/Llama-3.1-8B`):
//! the provider is the part before the first `/`.

use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexMap;

/// One provider/model a request can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `provider/model`.
    pub(crate) id: String,
    pub(crate) provider: String,
    pub(crate) model: String,
}

/// The outcome of resolving a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// These targets, in fallback order.
    Targets(Arc<[usize]>),
    /// A bare model name served by several providers (their `provider/model` ids).
    Ambiguous(Vec<String>),
    /// Nothing by that name.
    Unknown,
}

/// All targets, routes and the lookups between names and targets.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    pub(crate) targets: Vec<Target>,
    by_id: HashMap<String, usize>,
    by_bare: HashMap<String, Vec<usize>>,
    pub(crate) routes: IndexMap<String, Arc<[usize]>>,
}

impl Catalog {
    /// Adds a target; returns its index.
    pub(crate) fn add_target(&mut self, provider: &str, model: &str) -> usize {
        let id = format!("{provider}/{model}");
        if let Some(&i) = self.by_id.get(&id) {
            return i;
        }
        let i = self.targets.len();
        self.targets.push(Target {
            id: id.clone(),
            provider: provider.to_owned(),
            model: model.to_owned(),
        });
        self.by_id.insert(id, i);
        self.by_bare.entry(model.to_owned()).or_default().push(i);
        i
    }

    /// Adds a route.
    pub(crate) fn add_route(&mut self, alias: &str, targets: Vec<usize>) {
        self.routes.insert(alias.to_owned(), targets.into());
    }

    /// Resolves a provider model: `provider/model`, or a bare name served by one provider.
    /// Route aliases are not considered.
    pub(crate) fn resolve_model(&self, name: &str) -> Resolution {
        if let Some(&i) = self.by_id.get(name) {
            return Resolution::Targets(Arc::from([i]));
        }
        match self.by_bare.get(name).map(Vec::as_slice) {
            Some([i]) => Resolution::Targets(Arc::from([*i])),
            Some(many) if !many.is_empty() => Resolution::Ambiguous(
                many.iter()
                    .filter_map(|&i| self.targets.get(i).map(|t| t.id.clone()))
                    .collect(),
            ),
            _ => Resolution::Unknown,
        }
    }

    /// Resolves what a request names: a route alias first, then a provider model.
    pub(crate) fn resolve(&self, name: &str) -> Resolution {
        if let Some(route) = self.routes.get(name) {
            return Resolution::Targets(route.clone());
        }
        self.resolve_model(name)
    }

    /// The target at `i`.
    pub(crate) fn target(&self, i: usize) -> Option<&Target> {
        self.targets.get(i)
    }

    /// Indices of every target of `provider`.
    pub(crate) fn targets_of(&self, provider: &str) -> Vec<usize> {
        self.targets
            .iter()
            .enumerate()
            .filter(|(_, t)| t.provider == provider)
            .map(|(i, _)| i)
            .collect()
    }

    /// `true` when `name` is a bare model name served by exactly one provider.
    pub(crate) fn is_unique_bare(&self, name: &str) -> bool {
        matches!(self.by_bare.get(name).map(Vec::as_slice), Some([_]))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn resolves_aliases_ids_and_unique_bare_names() {
        let mut c = Catalog::default();
        let a = c.add_target("openai", "gpt-4o");
        let b = c.add_target("azure", "gpt-4o");
        let m = c.add_target("openai", "gpt-4o-mini");
        let v = c.add_target("vllm", "meta-llama/Llama-3.1-8B");
        c.add_route("fast", vec![m, a]);
        assert_eq!(c.resolve("fast"), Resolution::Targets(Arc::from([m, a])));
        assert_eq!(
            c.resolve("azure/gpt-4o"),
            Resolution::Targets(Arc::from([b]))
        );
        assert_eq!(
            c.resolve("gpt-4o-mini"),
            Resolution::Targets(Arc::from([m]))
        );
        assert_eq!(
            c.resolve("meta-llama/Llama-3.1-8B"),
            Resolution::Targets(Arc::from([v]))
        );
        assert_eq!(
            c.resolve("vllm/meta-llama/Llama-3.1-8B"),
            Resolution::Targets(Arc::from([v]))
        );
        assert_eq!(
            c.resolve("gpt-4o"),
            Resolution::Ambiguous(vec!["openai/gpt-4o".to_owned(), "azure/gpt-4o".to_owned()])
        );
        assert_eq!(c.resolve("gpt-5x"), Resolution::Unknown);
        assert!(c.is_unique_bare("gpt-4o-mini"));
        assert!(!c.is_unique_bare("gpt-4o"));
        assert_eq!(c.targets_of("openai"), vec![a, m]);
    }
}
