//! [`Fallback`]: services tried in order.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use llm_tower_core::{Error, LlmRequest, LlmResponse};
use tower::{Service, ServiceExt};

/// Tries its services in order: on a retryable failure (which includes an open circuit
/// and a provider's rate limit) the next one gets the request; any other error, or the
/// last one's, is returned.
#[derive(Clone)]
pub struct Fallback<S> {
    steps: Arc<[S]>,
}

impl<S> std::fmt::Debug for Fallback<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fallback")
            .field("steps", &self.steps.len())
            .finish()
    }
}

impl<S> Fallback<S> {
    /// Over `steps`, in order.
    pub fn new(steps: Vec<S>) -> Self {
        Fallback {
            steps: steps.into(),
        }
    }
}

impl<S> Service<LlmRequest> for Fallback<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = Error> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    type Response = LlmResponse;
    type Error = Error;
    type Future = BoxFuture<'static, Result<LlmResponse, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let steps = Arc::clone(&self.steps);
        Box::pin(async move {
            let name = |n: usize| format!("step {n}");
            super::in_order(steps.len(), req, "fallback", name, |n, one| {
                steps[n].clone().oneshot(one)
            })
            .await
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use llm_tower_core::{ChatRequest, ErrorKind, Message, ResponseBody};
    use tower::util::BoxCloneSyncService;

    type Svc = BoxCloneSyncService<LlmRequest, LlmResponse, Error>;

    fn answering(kind: Option<ErrorKind>, name: &'static str) -> Svc {
        BoxCloneSyncService::new(tower::service_fn(move |_req: LlmRequest| async move {
            match kind {
                Some(k) => Err(Error::new(k, name)),
                None => {
                    let chat = llm_tower_core::ChatResponse::new(name, name, 0, Vec::new());
                    Ok(LlmResponse::new(ResponseBody::Chat(chat)))
                }
            }
        }))
    }

    fn req() -> LlmRequest {
        LlmRequest::chat(ChatRequest::new("m", vec![Message::user("hi")]))
    }

    #[tokio::test]
    async fn retryable_failures_fall_back_others_do_not() {
        let f = Fallback::new(vec![
            answering(Some(ErrorKind::RateLimited), "a"),
            answering(None, "b"),
        ]);
        let r = f.oneshot(req()).await.unwrap();
        assert_eq!(r.as_chat().unwrap().id, "b");
        let f = Fallback::new(vec![
            answering(Some(ErrorKind::InvalidRequest), "a"),
            answering(None, "b"),
        ]);
        let e = f.oneshot(req()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        let f = Fallback::new(vec![
            answering(Some(ErrorKind::Timeout), "a"),
            answering(Some(ErrorKind::Overloaded), "b"),
        ]);
        let e = f.oneshot(req()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Overloaded, "the last error");
    }
}
