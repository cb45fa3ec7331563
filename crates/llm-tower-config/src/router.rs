//! Name resolution and the fallback router.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use llm_tower_core::{Error, LlmRequest, LlmResponse};
use llm_tower_layers::route::Fallback;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

use crate::catalog::{Catalog, Resolution};

/// The service type of one route target and of the whole stack.
pub(crate) type BoxedLlm = BoxCloneSyncService<LlmRequest, LlmResponse, Error>;

/// The targets a request was resolved to (a request extension set by [`Resolve`]), and
/// the route alias it named, if any.
#[derive(Debug, Clone)]
pub(crate) struct RouteChoice(pub(crate) Arc<[usize]>, pub(crate) Option<Arc<str>>);

/// The error for a name that is no route, no `provider/model` and no model name.
pub(crate) fn model_not_found(name: &str) -> Error {
    Error::model_not_found(format!(
        "model not found: {name:?} is not a route, a provider/model or the name of a model of exactly one provider (see /v1/models)"
    ))
}

fn resolve(catalog: &Catalog, name: &str) -> Result<Arc<[usize]>, Error> {
    match catalog.resolve(name) {
        Resolution::Targets(t) if !t.is_empty() => Ok(t),
        Resolution::Ambiguous(ids) => Err(Error::invalid_request(format!(
            "model {name:?} is ambiguous: it is served by {}; name one of them",
            ids.join(", ")
        ))),
        Resolution::Targets(_) | Resolution::Unknown => Err(model_not_found(name)),
    }
}

/// Resolves the requested name before anything else spends quota on it: an unknown model
/// fails with `Error::model_not_found` before rate limits count it.
#[derive(Clone, Debug)]
pub(crate) struct ResolveLayer {
    catalog: Arc<Catalog>,
}

impl ResolveLayer {
    pub(crate) fn new(catalog: Arc<Catalog>) -> Self {
        ResolveLayer { catalog }
    }
}

impl<S> Layer<S> for ResolveLayer {
    type Service = Resolve<S>;

    fn layer(&self, inner: S) -> Resolve<S> {
        Resolve {
            inner,
            catalog: Arc::clone(&self.catalog),
        }
    }
}

/// The service of [`ResolveLayer`].
#[derive(Clone, Debug)]
pub(crate) struct Resolve<S> {
    inner: S,
    catalog: Arc<Catalog>,
}

impl<S> Service<LlmRequest> for Resolve<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = Error>,
    S::Future: Send + 'static,
{
    type Response = LlmResponse;
    type Error = Error;
    type Future = BoxFuture<'static, Result<LlmResponse, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: LlmRequest) -> Self::Future {
        match resolve(&self.catalog, req.model()) {
            Ok(targets) => {
                let alias = self
                    .catalog
                    .routes
                    .contains_key(req.model())
                    .then(|| Arc::from(req.model()));
                req.extensions.insert(RouteChoice(targets, alias));
                Box::pin(self.inner.call(req))
            }
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
}

/// Sends a request to its route's service: a route alias's plan (its targets in order,
/// the next tried on a retryable failure, which includes an open circuit and a
/// provider-scope rate limit; or a route object's balanced group, fallbacks and hedge), or
/// the one target a `provider/model` names.
#[derive(Clone)]
pub(crate) struct Router {
    catalog: Arc<Catalog>,
    targets: Arc<[Option<BoxedLlm>]>,
    /// Route objects (balanced groups, fallbacks, hedging) by alias.
    plans: Arc<HashMap<String, BoxedLlm>>,
}

impl Router {
    /// Over `targets` (by catalog index); each route alias is its targets in fallback
    /// order ([`Fallback`]) until [`Router::plans`] gives it another service.
    pub(crate) fn new(catalog: Arc<Catalog>, targets: Vec<Option<BoxedLlm>>) -> Self {
        let plans = catalog
            .routes
            .iter()
            .map(|(alias, route)| {
                let steps: Vec<BoxedLlm> = route
                    .iter()
                    .filter_map(|&t| targets.get(t).cloned().flatten())
                    .collect();
                let plan: BoxedLlm = BoxCloneSyncService::new(Fallback::new(steps));
                (alias.clone(), plan)
            })
            .collect();
        Router {
            catalog,
            targets: targets.into(),
            plans: Arc::new(plans),
        }
    }

    /// The services of route objects (balanced groups, hedges), by alias.
    pub(crate) fn plans(mut self, plans: HashMap<String, BoxedLlm>) -> Self {
        let mut all = HashMap::clone(&self.plans);
        all.extend(plans);
        self.plans = Arc::new(all);
        self
    }
}

impl Service<LlmRequest> for Router {
    type Response = LlmResponse;
    type Error = Error;
    type Future = BoxFuture<'static, Result<LlmResponse, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let choice = req.extensions.get::<RouteChoice>();
        let alias = match choice {
            Some(c) => c.1.as_deref(),
            None => Some(req.model()),
        };
        if let Some(plan) = alias.and_then(|a| self.plans.get(a)) {
            return Box::pin(plan.clone().oneshot(req));
        }
        // Not a route: one provider/model.
        let route = match choice {
            Some(r) => Ok(r.0.clone()),
            None => resolve(&self.catalog, req.model()),
        };
        let target = route.and_then(|r| {
            r.first()
                .and_then(|&t| self.targets.get(t).cloned().flatten())
                .ok_or_else(|| Error::internal("route has no usable target"))
        });
        match target {
            Ok(svc) => Box::pin(svc.oneshot(req)),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
}
